package rank

// tree is a counted B+tree: an order-statistic tree whose leaves hold the keys in
// order and whose inner nodes hold, for every child, a lower bound of its keys and
// the number of keys below it. Every operation is one descent from the root
// (O(log n) with a large base), and contiguous ranges are read by walking the leaf
// chain. A B+tree rather than a skip list because its leaves store the keys inline
// (no node per participant), which is what keeps memory near 50 bytes per entry
// and range reads cache friendly.
type tree struct {
	root *node
	n    int
	p    *participants // ids, for ties on score and achieved_at
}

// entry is one participant's place in the order: its packed key (see packKey)
// and its handle in participants. 16 bytes and no pointers, so leaves are dense
// and the garbage collector never scans them.
type entry struct {
	k1 uint64
	k2 uint32
	h  uint32
}

// less is the total order: packed (score, achieved_at) ascending, then id.
func (t *tree) less(a, b *entry) bool {
	if a.k1 != b.k1 {
		return a.k1 < b.k1
	}
	if a.k2 != b.k2 {
		return a.k2 < b.k2
	}
	if a.h == b.h {
		return false
	}
	return string(t.p.idBytes(a.h)) < string(t.p.idBytes(b.h))
}

// Node sizes. Variables only so that tests can shrink them to build deep trees
// from a few hundred keys; nothing else changes them.
var (
	leafMax  = 64 // keys per leaf before it splits
	innerMax = 64 // children per inner node before it splits
	// A node that falls below a quarter full after a delete is merged with or
	// refilled from a sibling; a lower bound than the classic half keeps score
	// churn (delete + insert of the same participant) from merging and splitting
	// the same pair of leaves back and forth.
	leafMin  = leafMax / 4
	innerMin = innerMax / 4
)

type node struct {
	leaf bool
	// Leaf: the keys, in order. Inner: keys[i] is a lower bound of every key
	// under kids[i] and an upper bound (exclusive) of those under kids[i-1];
	// keys[0] is not used.
	keys   []entry
	kids   []*node
	counts []int // inner: number of keys under kids[i]
	next   *node // leaf: the next leaf in order
}

// nodeCap is the capacity of a node's arrays: one more than the largest
// leafMax or innerMax, for the entry that is added just before a split.
const nodeCap = 65

// A node's arrays live in the same allocation as the node, right after its
// header: reaching a node out of cache then costs one miss (the header's line
// and the first keys' lines arrive together) instead of two dependent ones
// (header, then a separately allocated array). Pointer fields come first so
// the garbage collector scans only the header (and an inner node's kids).
type leafBlock struct {
	node
	keys [nodeCap]entry
}

type innerBlock struct {
	node
	kids   [nodeCap]*node
	keys   [nodeCap]entry
	counts [nodeCap]int
}

func newLeaf() *node {
	b := &leafBlock{}
	b.leaf = true
	b.node.keys = b.keys[:0]
	return &b.node
}

func newInner() *node {
	b := &innerBlock{}
	b.node.keys, b.node.kids, b.node.counts = b.keys[:0], b.kids[:0], b.counts[:0]
	return &b.node
}

func (n *node) size() int {
	if n.leaf {
		return len(n.keys)
	}
	s := 0
	for _, c := range n.counts {
		s += c
	}
	return s
}

// lowerBound returns the first position in a leaf whose key is not less than k.
//
// It scans instead of bisecting. A node is 1 KiB; bisection loads one cache
// line, waits, then decides which to load next, while a forward scan is a
// branch the processor predicts (continue), so it issues the loads of the
// following lines before the compares resolve and their misses overlap. On a
// million-entry board (nodes mostly out of cache) the scan is several times
// faster; on a hot node the extra compares cost a few nanoseconds. Only an
// entry whose packed key equals k's falls back to comparing ids.
func (t *tree) lowerBound(n *node, k *entry) int {
	keys := n.keys
	i := 0
	// before(&keys[i], k), written out: the call does not inline, and this
	// loop is most of a descent's instructions.
	for ; i < len(keys); i++ {
		e := &keys[i]
		if e.k1 != k.k1 {
			if e.k1 > k.k1 {
				break
			}
			continue
		}
		if e.k2 != k.k2 {
			if e.k2 > k.k2 {
				break
			}
			continue
		}
		if !t.less(e, k) {
			break
		}
	}
	return i
}

// child returns the index of the child of an inner node that covers k: the last
// child whose lower bound is not greater than k. It scans like lowerBound.
func (t *tree) child(n *node, k *entry) int {
	keys := n.keys
	i := 1
	// !before(k, &keys[i]), written out as in lowerBound.
	for ; i < len(keys); i++ {
		e := &keys[i]
		if e.k1 != k.k1 {
			if k.k1 < e.k1 {
				break
			}
			continue
		}
		if e.k2 != k.k2 {
			if k.k2 < e.k2 {
				break
			}
			continue
		}
		if t.less(k, e) {
			break
		}
	}
	return i - 1
}

func (n *node) countBefore(c int) int {
	s := 0
	for _, v := range n.counts[:c] {
		s += v
	}
	return s
}

// insert adds k (which must not be present) and returns its 0-based position.
func (t *tree) insert(k entry) int {
	if t.root == nil {
		t.root = newLeaf()
	}
	var pt path
	leaf, base, _, _ := t.leafOf(&k, &pt)
	i := t.lowerBound(leaf, &k)
	t.insertAt(&pt, leaf, i, k)
	return base + i
}

// growRoot puts a new root above the old one and right, its new sibling whose
// keys start at sep, during an insert (t.n not yet counting the new key).
func (t *tree) growRoot(right *node, sep entry) {
	r := newInner()
	r.keys = append(r.keys, entry{}, sep)
	r.kids = append(r.kids, t.root, right)
	rs := right.size()
	r.counts = append(r.counts, t.n+1-rs, rs)
	t.root = r
}

func insertAt[T any](s []T, i int, v T) []T {
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func removeAt[T any](s []T, i int) []T {
	copy(s[i:], s[i+1:])
	var zero T
	s[len(s)-1] = zero // drop the reference for the GC
	return s[:len(s)-1]
}

func splitLeaf(n *node) *node {
	half := len(n.keys) / 2
	r := newLeaf()
	r.keys = append(r.keys, n.keys[half:]...)
	clear(n.keys[half:])
	n.keys = n.keys[:half]
	r.next = n.next
	n.next = r
	return r
}

func splitInner(n *node) *node {
	half := len(n.kids) / 2
	r := newInner()
	r.keys = append(r.keys, n.keys[half:]...)
	r.kids = append(r.kids, n.kids[half:]...)
	r.counts = append(r.counts, n.counts[half:]...)
	clear(n.keys[half:])
	clear(n.kids[half:])
	n.keys = n.keys[:half]
	n.kids = n.kids[:half]
	n.counts = n.counts[:half]
	return r
}

// delete removes k (matched by handle) and returns the 0-based position it had.
func (t *tree) delete(k entry) (int, bool) {
	var pt path
	leaf, base, _, _ := t.leafOf(&k, &pt)
	if leaf == nil {
		return 0, false
	}
	i := t.lowerBound(leaf, &k)
	if i == len(leaf.keys) || leaf.keys[i].h != k.h {
		return 0, false
	}
	t.deleteAt(&pt, leaf, i)
	return base + i, true
}

// rebalance merges the underfull child c of n with a sibling, or moves entries
// over from the sibling when the two together would not fit in one node.
func rebalance(n *node, c int) {
	if len(n.kids) < 2 {
		return
	}
	li := c - 1
	if c == 0 {
		li = 0
	}
	l, r := n.kids[li], n.kids[li+1]
	if l.leaf {
		rebalanceLeaves(n, li, l, r)
	} else {
		rebalanceInner(n, li, l, r)
	}
}

func rebalanceLeaves(n *node, li int, l, r *node) {
	total := len(l.keys) + len(r.keys)
	if total <= leafMax*3/4 {
		l.keys = append(l.keys, r.keys...)
		l.next = r.next
		n.counts[li] = total
		n.keys = removeAt(n.keys, li+1)
		n.kids = removeAt(n.kids, li+1)
		n.counts = removeAt(n.counts, li+1)
		return
	}
	want := total / 2
	switch {
	case len(l.keys) < want: // move the first keys of r to the end of l
		m := want - len(l.keys)
		l.keys = append(l.keys, r.keys[:m]...)
		copy(r.keys, r.keys[m:])
		clear(r.keys[len(r.keys)-m:])
		r.keys = r.keys[:len(r.keys)-m]
	case len(l.keys) > want: // move the last keys of l to the front of r
		m := len(l.keys) - want
		r.keys = append(r.keys, make([]entry, m)...)
		copy(r.keys[m:], r.keys)
		copy(r.keys, l.keys[want:])
		clear(l.keys[want:])
		l.keys = l.keys[:want]
	}
	n.counts[li], n.counts[li+1] = len(l.keys), len(r.keys)
	n.keys[li+1] = r.keys[0]
}

func rebalanceInner(n *node, li int, l, r *node) {
	// r's unused keys[0] becomes the separator from the parent, so that every key
	// of r is a valid lower bound wherever it ends up.
	r.keys[0] = n.keys[li+1]
	total := len(l.kids) + len(r.kids)
	if total <= innerMax*3/4 {
		l.keys = append(l.keys, r.keys...)
		l.kids = append(l.kids, r.kids...)
		l.counts = append(l.counts, r.counts...)
		n.counts[li] += n.counts[li+1]
		n.keys = removeAt(n.keys, li+1)
		n.kids = removeAt(n.kids, li+1)
		n.counts = removeAt(n.counts, li+1)
		return
	}
	want := total / 2
	moved := 0
	switch {
	case len(l.kids) < want:
		m := want - len(l.kids)
		for _, v := range r.counts[:m] {
			moved += v
		}
		l.keys = append(l.keys, r.keys[:m]...)
		l.kids = append(l.kids, r.kids[:m]...)
		l.counts = append(l.counts, r.counts[:m]...)
		r.keys = shiftOut(r.keys, m)
		r.kids = shiftOut(r.kids, m)
		r.counts = shiftOut(r.counts, m)
		n.counts[li] += moved
		n.counts[li+1] -= moved
	case len(l.kids) > want:
		for _, v := range l.counts[want:] {
			moved += v
		}
		r.keys = shiftIn(r.keys, l.keys[want:])
		r.kids = shiftIn(r.kids, l.kids[want:])
		r.counts = shiftIn(r.counts, l.counts[want:])
		clear(l.keys[want:])
		clear(l.kids[want:])
		l.keys, l.kids, l.counts = l.keys[:want], l.kids[:want], l.counts[:want]
		n.counts[li] -= moved
		n.counts[li+1] += moved
	}
	n.keys[li+1] = r.keys[0]
}

// shiftOut drops the first m elements of s in place.
func shiftOut[T any](s []T, m int) []T {
	copy(s, s[m:])
	clear(s[len(s)-m:])
	return s[:len(s)-m]
}

// shiftIn puts front before the elements of s, in place.
func shiftIn[T any](s []T, front []T) []T {
	m := len(front)
	s = append(s, front...) // grow by m
	copy(s[m:], s[:len(s)-m])
	copy(s, front)
	return s
}

// seek returns the leaf holding the key at 0-based position i and its index there.
func (t *tree) seek(i int) (*node, int) {
	n := t.root
	for !n.leaf {
		c := 0
		for c < len(n.counts)-1 && i >= n.counts[c] {
			i -= n.counts[c]
			c++
		}
		n = n.kids[c]
	}
	return n, i
}

// first returns the leftmost leaf, or nil for an empty tree.
func (t *tree) first() *node {
	n := t.root
	for n != nil && !n.leaf {
		n = n.kids[0]
	}
	return n
}

// at returns the key at 0-based position i (0 <= i < t.n).
func (t *tree) at(i int) entry {
	n, j := t.seek(i)
	return n.keys[j]
}

// scan calls fn for up to limit keys starting at 0-based position from, in
// order, until fn returns false.
func (t *tree) scan(from, limit int, fn func(pos int, k *entry) bool) {
	if from < 0 || from >= t.n || limit <= 0 {
		return
	}
	n, j := t.seek(from)
	pos := from
	for n != nil && limit > 0 {
		for ; j < len(n.keys) && limit > 0; j++ {
			if !fn(pos, &n.keys[j]) {
				return
			}
			pos++
			limit--
		}
		n, j = n.next, 0
	}
}

// path is the way down to a leaf: the inner nodes passed and the child taken
// in each. 32 levels hold any tree this package can build (even the tests'
// nodes of 4 keys split into halves of at least 2).
type path struct {
	nodes [32]*node
	kids  [32]int
	depth int
}

// leafOf descends to the leaf where k belongs, recording the way in pt unless
// pt is nil. It returns the leaf (nil for an empty tree), the number of keys
// in the leaves before it, and the separators that bound the keys leading to
// it: lo <= key < hi, nil where unbounded.
func (t *tree) leafOf(k *entry, pt *path) (n *node, base int, lo, hi *entry) {
	n = t.root
	if pt != nil {
		pt.depth = 0
	}
	if n == nil {
		return nil, 0, nil, nil
	}
	for !n.leaf {
		c := t.child(n, k)
		if pt != nil {
			pt.nodes[pt.depth], pt.kids[pt.depth] = n, c
			pt.depth++
		}
		base += n.countBefore(c)
		if c > 0 {
			lo = &n.keys[c]
		}
		if c+1 < len(n.keys) {
			hi = &n.keys[c+1]
		}
		n = n.kids[c]
	}
	return n, base, lo, hi
}

// deleteAt removes the key at index i of leaf, reached by pt, and fixes the
// counts on the way back up, merging or refilling nodes left underfull. It reports
// whether nodes were merged or refilled (any other path into the tree is then
// stale; otherwise only counts on pt changed).
func (t *tree) deleteAt(pt *path, leaf *node, i int) (restructured bool) {
	leaf.keys = removeAt(leaf.keys, i)
	for d := pt.depth - 1; d >= 0; d-- {
		n, c := pt.nodes[d], pt.kids[d]
		n.counts[c]--
		kid := n.kids[c]
		if (kid.leaf && len(kid.keys) < leafMin) || (!kid.leaf && len(kid.kids) < innerMin) {
			rebalance(n, c)
			restructured = true
		}
	}
	t.n--
	if !t.root.leaf && len(t.root.kids) == 1 {
		t.root = t.root.kids[0]
	}
	return restructured
}

// insertAt inserts k at index i of leaf, reached by pt, and fixes the counts
// on the way back up, splitting nodes that overflow (up to a new root).
func (t *tree) insertAt(pt *path, leaf *node, i int, k entry) {
	leaf.keys = insertAt(leaf.keys, i, k)
	var (
		right *node
		sep   entry
	)
	if len(leaf.keys) > leafMax {
		right = splitLeaf(leaf)
		sep = right.keys[0]
	}
	for d := pt.depth - 1; d >= 0; d-- {
		n, c := pt.nodes[d], pt.kids[d]
		n.counts[c]++
		if right == nil {
			continue
		}
		rs := right.size()
		n.counts[c] -= rs
		n.keys = insertAt(n.keys, c+1, sep)
		n.kids = insertAt(n.kids, c+1, right)
		n.counts = insertAt(n.counts, c+1, rs)
		right = nil
		if len(n.kids) > innerMax {
			right = splitInner(n)
			sep = right.keys[0]
		}
	}
	if right != nil {
		t.growRoot(right, sep)
	}
	t.n++
}

// relocate moves the key at index i of leaf (reached by oldPath, at position
// oldPos) to its new value to, which belongs in newLeaf (reached by newPath,
// base keys before it, as the tree stood before the move), and returns to's
// position. Neither step descends again unless the delete merged nodes.
func (t *tree) relocate(oldPath *path, leaf *node, i, oldPos int, newPath *path, newLeaf *node, base int, to entry) int {
	if t.deleteAt(oldPath, leaf, i) {
		return t.insert(to) // nodes were merged or refilled: newPath is stale
	}
	// Only counts on the old path changed: newPath still leads to the new
	// key's leaf, which lies wholly before or after the old entry.
	if oldPos < base {
		base--
	}
	j := t.lowerBound(newLeaf, &to)
	t.insertAt(newPath, newLeaf, j, to)
	return base + j
}

// moveInLeaf replaces the key at index i of leaf n with to, which belongs in
// the same leaf (the caller checked the leaf's bounds): one shift inside the
// leaf, no count changes. It returns to's index.
func (t *tree) moveInLeaf(n *node, i int, to entry) int {
	j := t.lowerBound(n, &to) // counts the key at i when it ranks before to
	if j > i {
		j--
		copy(n.keys[i:j], n.keys[i+1:j+1])
	} else {
		copy(n.keys[j+1:i+1], n.keys[j:i])
	}
	n.keys[j] = to
	return j
}

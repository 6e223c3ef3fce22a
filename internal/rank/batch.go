package rank

// Batched operations that overlap the cache misses of independent requests.
//
// One lookup on a large board is a chain of dependent misses: index slot, then
// (inner nodes being mostly cached) the leaf, with the record that confirms the
// id alongside. Nothing shortens one chain. But the chains of different
// requests are independent, so a batch runs them in lockstep, one stage at a
// time: every request's slot is loaded before any descent, and every leaf and
// record is touched before any leaf is scanned or id confirmed. The loads of one
// stage do not depend on each other, so the processor keeps many misses in
// flight at once (group prefetching). Go has no prefetch instruction, so a
// "touch" is a real load whose value is passed to keep.

// batchLanes is how many requests a batch runs in lockstep. The stages keep
// their per-request state in arrays of this size on the stack.
const batchLanes = 64

// noHandle marks a descent key that has no record yet (a new participant): it
// is compared by packed key only.
const noHandle = ^uint32(0)

// RankMany sets out[i] to Rank(ids[i]): the 1-based rank of each id, or 0 when
// it is not ranked. It returns exactly what Rank would, faster per id when the
// board does not fit in cache, because the misses of different ids overlap.
// out must be at least as long as ids.
func (r *Ranking) RankMany(ids []string, out []int) {
	if len(out) < len(ids) {
		panic("rank: RankMany output shorter than input")
	}
	for len(ids) > 0 {
		n := min(len(ids), batchLanes)
		r.rankChunk(ids[:n], out[:n])
		ids, out = ids[n:], out[n:]
	}
}

func (r *Ranking) rankChunk(ids []string, out []int) {
	var (
		hv    [batchLanes]uint64
		keys  [batchLanes]entry
		slots [batchLanes]int
		lane  [batchLanes]int
		nodes [batchLanes]*node
		pos   [batchLanes]int
	)
	// Stage 1: every index slot.
	sink := r.p.touchSlots(ids, hv[:len(ids)])
	// Stage 2: the key of each id's first slot with a matching tag, in cache
	// now. The record that confirms it is loaded later, with the leaves.
	m := 0
	for i := range ids {
		si := r.p.candidate(hv[i], r.p.home(hv[i]))
		if si < 0 {
			out[i] = 0
			continue
		}
		keys[m], slots[m], lane[m] = r.entryOf(si), si, i
		m++
	}
	if m == 0 || r.t.root == nil {
		for j := range m {
			out[lane[j]] = 0
		}
		keep(sink)
		return
	}
	// Stage 3: descend all keys in lockstep, one level at a time. Inner nodes
	// are few and mostly cached (touching them first measured slower); the leaf
	// level is the miss, so every leaf (and every record) is touched before any
	// is searched.
	for j := range m {
		nodes[j] = r.t.root
	}
	for !nodes[0].leaf { // all leaves are at the same depth
		for j := range m {
			n := nodes[j]
			c := r.t.child(n, &keys[j])
			pos[j] += n.countBefore(c)
			nodes[j] = n.kids[c]
		}
	}
	sink += touchNodes(nodes[:m])
	for j := range m {
		sink += uint64(r.p.rec(keys[j].h)[0])
	}
	// Stage 4: the leaves and records are in cache; confirm each id and finish
	// its rank as tree.rank does. A slot whose tag matched another participant's
	// (about one in a billion) takes the single path.
	for j := range m {
		id := ids[lane[j]]
		if !r.p.holds(slots[j], id) {
			out[lane[j]] = r.Rank(id)
			continue
		}
		n := nodes[j]
		i := r.t.lowerBound(n, &keys[j])
		if i == len(n.keys) || n.keys[i].h != keys[j].h {
			out[lane[j]] = 0
			continue
		}
		out[lane[j]] = pos[j] + i + 1
	}
	keep(sink)
}

// touchNodes loads the headers of nodes, then the cache lines of their keys
// (and, for inner nodes, counts); the loads of each pass are independent of one
// another. (The arrays follow the header in the same allocation, but their
// address is read from it.)
func touchNodes(nodes []*node) uint64 {
	var sink uint64
	for _, n := range nodes {
		sink += uint64(len(n.keys))
	}
	for _, n := range nodes {
		// An entry is 16 bytes: every fourth one starts a new 64-byte line (or
		// close to it; a misaligned array touches one line late, harmlessly).
		for i := 0; i < len(n.keys); i += 4 {
			sink += n.keys[i].k1
		}
		if !n.leaf {
			for i := 0; i < len(n.counts); i += 8 {
				sink += uint64(n.counts[i])
			}
		}
	}
	return sink
}

// Sub is one submission of a SubmitMany batch: the arguments of Submit.
type Sub struct {
	ID    string
	Score uint64
	At    int64
}

// SubmitMany applies subs in order under policy and sets out[i] to the Change
// that Submit would have returned for subs[i] at that point: submission i+1
// sees the effect of submission i, and the result is exactly that of calling
// Submit for each in turn (including a panic at the first out-of-range
// submission, after the ones before it were applied). out must be at least as
// long as subs.
//
// Before applying a run of up to 64 submissions it warms the cache for them
// with overlapping misses: the index slots, the records, and the leaves holding
// each participant's current entry and the leaf where its new score will go.
// The warm-up only reads; what it loads is a guess made before the run's own
// changes, and correctness never depends on it.
func (r *Ranking) SubmitMany(subs []Sub, policy Policy, out []Change) {
	if len(out) < len(subs) {
		panic("rank: SubmitMany output shorter than input")
	}
	for len(subs) > 0 {
		n := min(len(subs), batchLanes)
		if n > 1 {
			r.warmSubs(subs[:n], policy)
		}
		for i := range subs[:n] {
			s := &subs[i]
			out[i] = r.Submit(s.ID, s.Score, s.At, policy)
		}
		subs, out = subs[n:], out[n:]
	}
}

// warmSubs touches, with overlapping misses, what applying subs will read: the
// index slots, the records, the leaf of each current entry and the leaf each
// new key would go to in the tree as it is now.
func (r *Ranking) warmSubs(subs []Sub, policy Policy) {
	var (
		hv    [batchLanes]uint64
		ids   [batchLanes]string
		keys  [2 * batchLanes]entry
		nodes [2 * batchLanes]*node
	)
	for i := range subs {
		ids[i] = subs[i].ID
	}
	sink := r.p.touchSlots(ids[:len(subs)], hv[:len(subs)])
	m := 0
	for i := range subs {
		s := &subs[i]
		if s.Score > MaxScore || s.At < 0 || s.At > MaxAchievedAt {
			continue // Submit will panic on it; nothing to warm
		}
		k1, k2 := packKey(r.norm(s.Score), s.At)
		// The first slot whose tag matches is taken for the participant's
		// without reading its record (loaded below, with the leaves): a guess
		// that is wrong about once in a billion, and costs a wasted load then.
		si := r.p.candidate(hv[i], r.p.home(hv[i]))
		if si < 0 {
			keys[m] = entry{k1, k2, noHandle}
			m++
			continue
		}
		old := r.entryOf(si)
		sink += uint64(r.p.rec(old.h)[0])
		h := old.h
		keys[m] = old
		m++
		oldS, _ := unpackKey(old.k1, old.k2)
		oldScore := r.norm(oldS)
		if s.Score != oldScore && (policy != PolicyBest || r.Better(s.Score, oldScore)) {
			keys[m] = entry{k1, k2, h}
			m++
		}
	}
	if m == 0 || r.t.root == nil {
		keep(sink)
		return
	}
	for j := range m {
		nodes[j] = r.t.root
	}
	for !nodes[0].leaf {
		for j := range m {
			n := nodes[j]
			nodes[j] = n.kids[childHint(n, &keys[j])]
		}
	}
	sink += touchNodes(nodes[:m])
	keep(sink)
}

// childHint returns the child of an inner node whose range holds k's packed
// key, comparing packed keys only (a tie goes to the right), by bisection: the
// warm-up's inner nodes are cached, where bisection's few compares beat a scan.
// Only the warm-up uses it, where a tie landing in a neighbouring leaf costs
// nothing but a wasted load; k may have no record (h == noHandle).
func childHint(n *node, k *entry) int {
	lo, hi := 1, len(n.keys) // the answer is the last i in [0, hi) with keys[i] <= k
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		e := &n.keys[mid]
		if k.k1 < e.k1 || (k.k1 == e.k1 && k.k2 < e.k2) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo - 1
}

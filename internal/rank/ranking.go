// Package rank is the ordered structure behind one leaderboard: the exact total
// order of the API (better score first, then the earlier achieved_at, then the
// participant id ascending), with O(log n) upsert, remove, rank-of-participant,
// entry-at-rank and contiguous range reads. It does no I/O and no locking; the
// store that owns a Ranking serialises writes to it.
package rank

import "unsafe"

// MaxScore is the largest score a Ranking accepts: 2^53-1, the largest integer
// that JSON and JavaScript carry exactly.
const MaxScore uint64 = 1<<53 - 1

// Order says which scores rank first.
type Order uint8

const (
	Descending Order = iota // higher score first
	Ascending               // lower score first
)

// Policy says how a submission combines with a participant's current score.
type Policy uint8

const (
	PolicySet  Policy = iota // the submitted score replaces the current one
	PolicyBest               // the better of the current and the submitted score is kept
)

// Entry is one participant as read from the ranking.
type Entry struct {
	Rank       int // 1-based
	ID         string
	Score      uint64
	AchievedAt int64 // Unix milliseconds
}

// Change describes what one submission or removal did.
type Change struct {
	Updated bool // false: nothing changed (same score, or not better under PolicyBest)
	Existed bool // the participant was ranked before

	OldScore uint64
	OldAt    int64
	OldRank  int // 0 when the participant was not ranked

	NewScore uint64
	NewAt    int64
	NewRank  int // 0 after a removal
}

// MaxAchievedAt is the largest achieved_at (Unix milliseconds) a Ranking
// accepts: 2^43-1, in the year 2248.
const MaxAchievedAt int64 = 1<<43 - 1

// Ranking is one leaderboard's participants in rank order.
type Ranking struct {
	order Order
	p     participants
	t     tree
}

// New returns an empty Ranking with the given order.
func New(order Order) *Ranking {
	r := &Ranking{order: order, p: newParticipants()}
	r.t.p = &r.p
	return r
}

// Order returns the ranking's sort order.
func (r *Ranking) Order() Order { return r.order }

// Len returns the number of ranked participants.
func (r *Ranking) Len() int { return r.t.n }

// norm maps a score so that ascending order is "better first"; it is its own inverse.
func (r *Ranking) norm(score uint64) uint64 {
	if r.order == Descending {
		return MaxScore - score
	}
	return score
}

// Better reports whether score a ranks before score b in this ranking's order.
func (r *Ranking) Better(a, b uint64) bool {
	if r.order == Descending {
		return a > b
	}
	return a < b
}

// entryOf returns the tree entry of the participant in slot si.
func (r *Ranking) entryOf(si int) entry {
	k1, k2 := r.p.key(si)
	return entry{k1, k2, r.p.handle(si)}
}

func (r *Ranking) decode(pos int, e *entry) Entry {
	s, at := unpackKey(e.k1, e.k2)
	return Entry{Rank: pos + 1, ID: r.p.id(e.h), Score: r.norm(s), AchievedAt: at}
}

// Submit applies score for participant id under policy; the score was achieved
// at the Unix millisecond at. It requires 0 <= score <= MaxScore and
// 0 <= at <= MaxAchievedAt (callers validate input; a violation panics rather
// than corrupt the order). A submission that changes nothing (the same score,
// or one that is not better under PolicyBest) keeps the participant's
// achieved_at and reports Updated == false.
func (r *Ranking) Submit(id string, score uint64, at int64, policy Policy) Change {
	if score > MaxScore || at < 0 || at > MaxAchievedAt || len(id) == 0 || len(id) > 255 {
		panic("rank: Submit out of range")
	}
	k1, k2 := packKey(r.norm(score), at)
	p := &r.p
	hv := p.hash(id)
	// As in locate: the first slot whose tag matches is trusted for the
	// descents, to the leaf of the participant's entry and (when the
	// submission will change it) to the leaf where the new key goes, and the
	// record that confirms the id is loaded alongside the two leaves: three
	// misses in flight together. Nothing changes before the id is confirmed.
	var oldPath, newPath path
	for si := p.candidate(hv, p.home(hv)); si >= 0; si = p.candidate(hv, p.next(si)) {
		old := r.entryOf(si)
		to := entry{k1, k2, old.h}
		leaf, base, lo, hi := r.t.leafOf(&old, &oldPath)
		oldS, oldAt := unpackKey(old.k1, old.k2)
		oldScore := r.norm(oldS)
		change := score != oldScore && (policy != PolicyBest || r.Better(score, oldScore))
		// A new key inside the old leaf's bounds (most small improvements)
		// moves within that leaf; another needs the leaf it goes to.
		inLeaf := (lo == nil || !r.t.less(&to, lo)) && (hi == nil || r.t.less(&to, hi))
		var newLeaf *node
		var newBase int
		if change && !inLeaf {
			newLeaf, newBase, _, _ = r.t.leafOf(&to, &newPath)
		}
		rec := p.rec(old.h)
		n := int(rec[0])
		i := r.t.lowerBound(leaf, &old)
		if newLeaf != nil && len(newLeaf.keys) > 0 {
			keep(newLeaf.keys[0].k1) // its miss overlaps the old leaf's and the record's
		}
		if n != len(id) || string(rec[recHeader:recHeader+n]) != id {
			continue
		}
		oldPos := base + i
		if !change {
			return Change{
				Existed: true, OldScore: oldScore, OldAt: oldAt, OldRank: oldPos + 1,
				NewScore: oldScore, NewAt: oldAt, NewRank: oldPos + 1,
			}
		}
		p.setKey(si, k1, k2)
		var newPos int
		if inLeaf {
			newPos = base + r.t.moveInLeaf(leaf, i, to)
		} else {
			newPos = r.t.relocate(&oldPath, leaf, i, oldPos, &newPath, newLeaf, newBase, to)
		}
		return Change{
			Updated: true, Existed: true,
			OldScore: oldScore, OldAt: oldAt, OldRank: oldPos + 1,
			NewScore: score, NewAt: at, NewRank: newPos + 1,
		}
	}
	h := p.insert(id, k1, k2)
	pos := r.t.insert(entry{k1, k2, h})
	return Change{Updated: true, NewScore: score, NewAt: at, NewRank: pos + 1}
}

// Warm prepares a run of Submit (or Get) calls on ids: it fetches their index
// slots and records with overlapping cache misses. It changes nothing and is
// only worth calling for several ids at once (a batch).
func (r *Ranking) Warm(ids []string) {
	var hashes [64]uint64
	for len(ids) > 0 {
		n := min(len(ids), len(hashes))
		keep(r.p.warm(ids[:n], hashes[:n]))
		ids = ids[n:]
	}
}

// Remove takes participant id out of the ranking.
func (r *Ranking) Remove(id string) (Change, bool) {
	si, ok := r.p.find(id)
	if !ok {
		return Change{}, false
	}
	old := r.entryOf(si)
	pos, _ := r.t.delete(old)
	r.p.remove(si)
	s, at := unpackKey(old.k1, old.k2)
	if r.p.wasteful() {
		r.compact()
	}
	return Change{
		Updated: true, Existed: true,
		OldScore: r.norm(s), OldAt: at, OldRank: pos + 1,
	}, true
}

// compact copies the live participants into a fresh arena and index and points
// the tree at their new handles. Removed records stay readable as holes until
// then, which is what keeps separators that name removed participants valid. Removals are rare (anti-cheat), so a full
// O(n) pass once half the arena is holes is cheaper than a free list.
func (r *Ranking) compact() {
	fresh := newParticipants()
	for n := r.t.first(); n != nil; n = n.next {
		for i := range n.keys {
			e := &n.keys[i]
			e.h = fresh.insert(string(r.p.idBytes(e.h)), e.k1, e.k2)
		}
	}
	r.p = fresh
	// Separators in inner nodes are copies of entries and may name removed
	// participants, whose ids only the old arena held: derive them anew.
	if r.t.root != nil {
		resetSeparators(r.t.root)
	}
}

// resetSeparators sets every separator under n to the first entry of its
// subtree and returns the first entry of n's.
func resetSeparators(n *node) entry {
	if n.leaf {
		if len(n.keys) == 0 {
			return entry{}
		}
		return n.keys[0]
	}
	for i, kid := range n.kids {
		n.keys[i] = resetSeparators(kid)
	}
	return n.keys[0]
}

// Get returns participant id's entry.
func (r *Ranking) Get(id string) (Entry, bool) {
	si, pos, ok := r.locate(id)
	if !ok {
		return Entry{}, false
	}
	s, at := unpackKey(r.p.key(si))
	return Entry{Rank: pos + 1, ID: id, Score: r.norm(s), AchievedAt: at}, true
}

// Rank returns participant id's 1-based rank, or 0 when it is not ranked.
func (r *Ranking) Rank(id string) int {
	_, pos, ok := r.locate(id)
	if !ok {
		return 0
	}
	return pos + 1
}

// locate finds id's slot and 0-based position. It descends the tree with the
// key of the first slot whose tag matches before it has confirmed that the
// slot is id's: the record's load is started first and compared after the
// descent, so its cache miss and the leaf's overlap instead of following each
// other. A tag that turns out to be another participant's (about one lookup in
// a billion) costs a wasted descent, and the probe goes on.
func (r *Ranking) locate(id string) (si, pos int, ok bool) {
	p := &r.p
	hv := p.hash(id)
	for i := p.candidate(hv, p.home(hv)); i >= 0; i = p.candidate(hv, p.next(i)) {
		s := &p.slots[i]
		k := entry{s.k1, s.k2, s.h - 1}
		leaf, base, _, _ := r.t.leafOf(&k, nil)
		if leaf == nil {
			return 0, 0, false
		}
		if r.t.n >= touchMin {
			keep(touchLeaf(leaf))
		}
		rec := p.rec(k.h)
		n := int(rec[0])
		j := r.t.lowerBound(leaf, &k)
		if n == len(id) && string(rec[recHeader:recHeader+n]) == id {
			if j == len(leaf.keys) || leaf.keys[j].h != k.h {
				return 0, 0, false
			}
			return i, base + j, true
		}
	}
	return 0, 0, false
}

// At returns the entry at 1-based rank (1 <= rank <= Len()).
func (r *Ranking) At(rank int) (Entry, bool) {
	if rank < 1 || rank > r.t.n {
		return Entry{}, false
	}
	e := r.t.at(rank - 1)
	return r.decode(rank-1, &e), true
}

// Range appends to dst the entries at ranks from..from+limit-1 (1-based),
// clipped to the ranking, and returns the extended slice.
func (r *Ranking) Range(dst []Entry, from, limit int) []Entry {
	if from < 1 {
		limit += from - 1
		from = 1
	}
	// All ids of the page share one byte buffer: one allocation per page instead
	// of one per entry. A string made from it stays valid when a later append
	// moves the buffer, because the old array is never written again.
	ids := make([]byte, 0, min(max(limit, 0), 1000)*16)
	r.t.scan(from-1, limit, func(pos int, e *entry) bool {
		s, at := unpackKey(e.k1, e.k2)
		start := len(ids)
		ids = append(ids, r.p.idBytes(e.h)...)
		id := unsafe.String(&ids[start], len(ids)-start)
		dst = append(dst, Entry{Rank: pos + 1, ID: id, Score: r.norm(s), AchievedAt: at})
		return true
	})
	return dst
}

// Each calls fn for every entry in rank order until fn returns false.
func (r *Ranking) Each(fn func(Entry) bool) {
	r.t.scan(0, r.t.n, func(pos int, e *entry) bool {
		return fn(r.decode(pos, e))
	})
}

// keep makes a value computed only for its loads (a "touch", see batch.go)
// observable, so the compiler keeps the loads. A call rather than a field the
// value is added to: lookups run concurrently, and a shared field would be a
// data race.
//
//go:noinline
func keep(uint64) {}

// touchMin is the board size from which a lookup touches its whole leaf
// first (touchLeaf): about where leaves stop fitting in this machine's
// last-level cache. Measured with Rank: at 1M participants 6-9% faster; at
// 100k, where leaves are mostly cached, 15% slower (the extra loads cost more
// than the misses they overlap). A variable only so that tests can make every
// lookup touch.
var touchMin = 1 << 18

// touchLeaf loads every cache line of leaf n's keys at once and returns a
// value derived from them. The keys sit at a fixed offset in the leaf's own
// allocation, so these loads do not wait for the node's header (where the
// slice's address is) and their misses overlap each other and the header's;
// the scan that follows finds the lines arriving together instead of one
// after another. Lines past the leaf's last key are loaded too: a fixed
// count keeps the loop free of the header's length.
func touchLeaf(n *node) uint64 {
	b := (*leafBlock)(unsafe.Pointer(n))
	var s uint64
	for j := 0; j < nodeCap; j += 4 { // an entry is 16 bytes: four to a 64-byte line
		s += b.keys[j].k1
	}
	return s
}

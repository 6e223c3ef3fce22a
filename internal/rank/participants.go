package rank

import (
	"hash/maphash"
	"unsafe"

	"golang.org/x/sys/unix"
)

// participants holds every participant of a ranking in compact, pointer-free
// memory: an open-addressing hash index whose slots hold each participant's
// sort key, and one record per participant (its id) in an arena of fixed-size
// chunks.
//
// Why not a map[string]struct{...}: at a million entries a Go map with string
// keys costs 65-85 bytes per entry before the id bytes, and every string header
// is a pointer the garbage collector scans. Here a participant costs its record
// (1 byte + the id, rounded to 8) plus 27-55 bytes of index (24-byte slots, 44%
// to 87% full), and the GC sees a few hundred chunk pointers instead of
// millions of strings.
//
// Why the key lives in the slot and not in the record: a lookup on a large
// board is a chain of cache misses, and the slot is the first link. With the
// key there, the descent into the tree starts as soon as the slot arrives, and
// the record (needed only to confirm the id behind a matching 32-bit tag) is
// loaded alongside it instead of before it: one miss fewer on the path of
// every rank lookup and submission.
//
// Record layout, at a handle h (byte offset h*8 into the arena):
//
//	[0]   id length (1..255)
//	[1:]  id bytes
type participants struct {
	chunks [][]byte
	used   uint64 // bytes allocated in the arena, records and holes
	dead   uint64 // bytes of removed records

	seed  maphash.Seed
	slots []slot // len is a power of two
	count int
}

// slot is one entry of the hash index: 24 bytes, no pointers.
type slot struct {
	k1  uint64 // the participant's packed key (see packKey)
	k2  uint32
	tag uint32 // high 32 bits of the id's hash: most probes that are not it end here
	h   uint32 // record handle + 1; 0 marks an empty slot
	_   uint32
}

const (
	chunkShift = 16 // 64 KiB chunks: small enough that growth wastes little
	chunkSize  = 1 << chunkShift
	// firstChunk is the size chunk 0 starts at; it doubles up to chunkSize
	// as records arrive. Thousands of small leaderboards (a few dozen
	// participants each) would otherwise hold 64 KiB of records each:
	// measured, 5,000 boards of ~46 participants took 477 MB of RSS.
	firstChunk = 1 << 10
	recHeader  = 1
)

func newParticipants() participants {
	return participants{seed: maphash.MakeSeed(), slots: make([]slot, 16)}
}

func recordSize(idLen int) uint64 { return uint64(recHeader+idLen+7) &^ 7 }

// rec returns the bytes of the record at handle h, from its start to the chunk's end.
func (p *participants) rec(h uint32) []byte {
	off := uint64(h) << 3
	return p.chunks[off>>chunkShift][off&(chunkSize-1):]
}

// idBytes returns participant h's id; it aliases the arena and is only valid
// until the next change to the ranking.
func (p *participants) idBytes(h uint32) []byte {
	r := p.rec(h)
	return r[recHeader : recHeader+int(r[0])]
}

func (p *participants) id(h uint32) string { return string(p.idBytes(h)) }

// handle returns the record handle of the participant in slot si.
func (p *participants) handle(si int) uint32 { return p.slots[si].h - 1 }

func (p *participants) key(si int) (k1 uint64, k2 uint32) {
	s := &p.slots[si]
	return s.k1, s.k2
}

func (p *participants) setKey(si int, k1 uint64, k2 uint32) {
	s := &p.slots[si]
	s.k1, s.k2 = k1, k2
}

// alloc stores a new record and returns its handle.
func (p *participants) alloc(id string) uint32 {
	size := recordSize(len(id))
	off := p.used & (chunkSize - 1)
	if off+size > chunkSize { // a record never spans chunks: skip the tail
		p.dead += chunkSize - off
		p.used += chunkSize - off
	}
	switch {
	case p.used>>chunkShift >= uint64(len(p.chunks)):
		n := chunkSize
		if len(p.chunks) == 0 {
			n = firstChunk
		}
		p.chunks = append(p.chunks, make([]byte, n))
	case len(p.chunks) == 1 && off+size > uint64(len(p.chunks[0])):
		// Chunk 0 is still growing: double it (a copy keeps every handle,
		// which is an offset).
		n := len(p.chunks[0])
		for uint64(n) < off+size {
			n *= 2
		}
		grown := make([]byte, min(n, chunkSize))
		copy(grown, p.chunks[0][:off])
		p.chunks[0] = grown
	}
	h := uint32(p.used >> 3)
	p.used += size
	r := p.rec(h)
	r[0] = byte(len(id))
	copy(r[recHeader:], id)
	return h
}

func (p *participants) hash(id string) uint64 { return maphash.String(p.seed, id) }

// find returns the slot of id.
func (p *participants) find(id string) (int, bool) {
	hv := p.hash(id)
	for i := p.candidate(hv, p.home(hv)); i >= 0; i = p.candidate(hv, p.next(i)) {
		if p.holds(i, id) {
			return i, true
		}
	}
	return 0, false
}

// tagMask keeps the bits of a tag that are used. A variable only so that tests
// can make tags collide (a participant's slot then often carries the tag of
// another), which exercises every path that confirms a tag with the record.
var tagMask = ^uint32(0)

// tagOf returns the tag stored with, and compared against, hash hv.
func tagOf(hv uint64) uint32 { return uint32(hv>>32) & tagMask }

func (p *participants) home(hv uint64) int { return int(hv & uint64(len(p.slots)-1)) }

func (p *participants) next(i int) int { return (i + 1) & (len(p.slots) - 1) }

// candidate returns the first slot from i on, in hv's probe run, whose tag is
// hv's, or -1 when the run ends first. The caller confirms it with holds; a
// lookup that needs the key first (Rank) can start its descent before that.
func (p *participants) candidate(hv uint64, i int) int {
	tag := tagOf(hv)
	mask := len(p.slots) - 1
	for ; ; i = (i + 1) & mask {
		s := &p.slots[i]
		if s.h == 0 {
			return -1
		}
		if s.tag == tag {
			return i
		}
	}
}

// holds reports whether slot si (a used slot) is id's.
func (p *participants) holds(si int, id string) bool {
	return string(p.idBytes(p.slots[si].h-1)) == id
}

// insert adds id (which must not be present) with its key and returns its handle.
func (p *participants) insert(id string, k1 uint64, k2 uint32) uint32 {
	// Grow at 7/8 full: linear probing stays short.
	if (p.count+1)*8 > len(p.slots)*7 {
		p.rehash(len(p.slots) * 2)
	}
	h := p.alloc(id)
	p.place(p.hash(id), slot{k1: k1, k2: k2, h: h + 1})
	p.count++
	return h
}

// place stores s (tag not yet set) in the first free slot of hv's probe run.
func (p *participants) place(hv uint64, s slot) {
	i := p.home(hv)
	for p.slots[i].h != 0 {
		i = p.next(i)
	}
	s.tag = tagOf(hv)
	p.slots[i] = s
}

func (p *participants) rehash(n int) {
	old := p.slots
	p.slots = make([]slot, n)
	adviseHugePages(p.slots)
	for _, s := range old {
		if s.h != 0 {
			p.place(maphash.Bytes(p.seed, p.idBytes(s.h-1)), s)
		}
	}
}

// remove deletes the participant in slot si and returns its handle. The
// record's bytes become a hole in the arena until compact reclaims them.
func (p *participants) remove(si int) uint32 {
	mask := len(p.slots) - 1
	h := p.slots[si].h - 1
	i := si
	// Backward-shift deletion: move later members of the probe run into the
	// hole so that lookups never need tombstones.
	for j := p.next(i); p.slots[j].h != 0; j = p.next(j) {
		home := p.home(maphash.Bytes(p.seed, p.idBytes(p.slots[j].h-1)))
		// Move slot j to i when its home is not in the cyclic range (i, j].
		if (j-home)&mask >= (j-i)&mask {
			p.slots[i] = p.slots[j]
			i = j
		}
	}
	p.slots[i] = slot{}
	p.count--
	p.dead += recordSize(len(p.idBytes(h)))
	return h
}

// compactMinDead is how many bytes of holes an arena holds before compaction is
// considered. A variable only so that tests can make compaction frequent.
var compactMinDead uint64 = chunkSize

// wasteful reports whether removed records hold more than half the arena,
// the point at which compact pays for itself.
func (p *participants) wasteful() bool {
	return p.dead > compactMinDead && p.dead*2 > p.used
}

// packKey maps (normalised score, achieved_at) to two integers whose
// lexicographic order is the order of the pair: 53 bits of score and 43 bits of
// milliseconds (enough until the year 2248) in 96 bits.
func packKey(s uint64, at int64) (uint64, uint32) {
	return s<<11 | uint64(at)>>32, uint32(at)
}

func unpackKey(k1 uint64, k2 uint32) (s uint64, at int64) {
	return k1 >> 11, int64(k1&(1<<11-1))<<32 | int64(k2)
}

// touchSlots computes the hashes of ids into hashes and loads their home index
// slots, returning a value derived from the loads so they cannot be optimised
// away. The loads do not depend on each other, so the processor overlaps their
// cache misses.
func (p *participants) touchSlots(ids []string, hashes []uint64) uint64 {
	var sink uint64
	for i, id := range ids {
		hashes[i] = p.hash(id)
		sink += uint64(p.slots[p.home(hashes[i])].h)
	}
	return sink
}

// warm loads the index slots and then the records of ids (see touchSlots); a
// run of Submit calls on the same ids afterwards finds both in cache instead of
// waiting for two misses each, one after the other.
func (p *participants) warm(ids []string, hashes []uint64) uint64 {
	sink := p.touchSlots(ids, hashes)
	for _, hv := range hashes[:len(ids)] {
		if s := &p.slots[p.home(hv)]; s.h != 0 && s.tag == tagOf(hv) {
			sink += uint64(p.rec(s.h - 1)[0])
		}
	}
	return sink
}

// adviseHugePages asks the kernel to back a large slot table with huge pages
// (MADV_HUGEPAGE, honoured where transparent huge pages are "madvise" or
// "always"): a lookup's first access, a random slot, is then a cache miss
// without a TLB miss on top. Measured at 1M participants: Submit and Rank
// about 7% faster. (Leaves in slabs advised the same way gained another 3-6%
// for 5 bytes per participant, and were not kept.)
func adviseHugePages(slots []slot) {
	size := len(slots) * int(unsafe.Sizeof(slot{}))
	if size < 4<<20 {
		return // fewer than two huge pages
	}
	base := unsafe.Pointer(&slots[0])
	const page = 4096
	skip := int(-uintptr(base) & (page - 1)) // madvise wants a page-aligned start
	b := unsafe.Slice((*byte)(unsafe.Add(base, skip)), (size-skip)&^(page-1))
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // only advice: an error changes nothing
}

package rank

import (
	"encoding/binary"
	"hash/maphash"
)

// participants holds every participant of a ranking in compact, pointer-free
// memory: one record per participant in an arena of fixed-size chunks, found by
// id through an open-addressing hash index.
//
// Why not a map[string]struct{...}: at a million entries a Go map with string
// keys costs 65-85 bytes per entry before the id bytes, and every string header
// is a pointer the garbage collector scans. Here a participant costs its record
// (13 bytes + the id, rounded to 8) plus 8-16 bytes of index, and the GC sees a
// few hundred chunk pointers instead of millions of strings.
//
// Record layout, at a handle h (byte offset h*8 into the arena):
//
//	[0:8]   k1  score and high bits of achieved_at (see packKey)
//	[8:12]  k2  low 32 bits of achieved_at
//	[12]    id length (1..255)
//	[13:]   id bytes
type participants struct {
	chunks [][]byte
	used   uint64 // bytes allocated in the arena, records and holes
	dead   uint64 // bytes of removed records

	seed  maphash.Seed
	slots []uint64 // 0 = empty, else tag<<32 | (handle+1); len is a power of two
	count int
}

const (
	chunkShift = 16 // 64 KiB chunks: small enough that growth wastes little
	chunkSize  = 1 << chunkShift
	recHeader  = 13
)

func newParticipants() participants {
	return participants{seed: maphash.MakeSeed(), slots: make([]uint64, 16)}
}

func recordSize(idLen int) uint64 { return uint64(recHeader+idLen+7) &^ 7 }

// rec returns the bytes of the record at handle h, from its start to the chunk's end.
func (p *participants) rec(h uint32) []byte {
	off := uint64(h) << 3
	return p.chunks[off>>chunkShift][off&(chunkSize-1):]
}

func (p *participants) key(h uint32) (k1 uint64, k2 uint32) {
	r := p.rec(h)
	return binary.LittleEndian.Uint64(r), binary.LittleEndian.Uint32(r[8:])
}

func (p *participants) setKey(h uint32, k1 uint64, k2 uint32) {
	r := p.rec(h)
	binary.LittleEndian.PutUint64(r, k1)
	binary.LittleEndian.PutUint32(r[8:], k2)
}

// idBytes returns participant h's id; it aliases the arena and is only valid
// until the next change to the ranking.
func (p *participants) idBytes(h uint32) []byte {
	r := p.rec(h)
	return r[recHeader : recHeader+int(r[12])]
}

func (p *participants) id(h uint32) string { return string(p.idBytes(h)) }

// alloc stores a new record and returns its handle.
func (p *participants) alloc(id string, k1 uint64, k2 uint32) uint32 {
	size := recordSize(len(id))
	off := p.used & (chunkSize - 1)
	if off+size > chunkSize { // a record never spans chunks: skip the tail
		p.dead += chunkSize - off
		p.used += chunkSize - off
	}
	if p.used>>chunkShift >= uint64(len(p.chunks)) {
		p.chunks = append(p.chunks, make([]byte, chunkSize))
	}
	h := uint32(p.used >> 3)
	p.used += size
	r := p.rec(h)
	binary.LittleEndian.PutUint64(r, k1)
	binary.LittleEndian.PutUint32(r[8:], k2)
	r[12] = byte(len(id))
	copy(r[recHeader:], id)
	return h
}

func (p *participants) hash(id string) uint64 { return maphash.String(p.seed, id) }

// find returns the handle of id.
func (p *participants) find(id string) (uint32, bool) {
	return p.findHashed(id, p.hash(id))
}

// findHashed is find with id's hash already computed.
func (p *participants) findHashed(id string, hv uint64) (uint32, bool) {
	tag := hv >> 32
	mask := uint64(len(p.slots) - 1)
	for i := hv & mask; ; i = (i + 1) & mask {
		s := p.slots[i]
		if s == 0 {
			return 0, false
		}
		if s>>32 == tag {
			h := uint32(s) - 1
			if string(p.idBytes(h)) == id {
				return h, true
			}
		}
	}
}

// insert adds id (which must not be present) with its key and returns its handle.
func (p *participants) insert(id string, k1 uint64, k2 uint32) uint32 {
	// Grow at 7/8 full: linear probing stays short, and the table costs
	// 9 to 18 bytes per participant.
	if (p.count+1)*8 > len(p.slots)*7 {
		p.rehash(len(p.slots) * 2)
	}
	h := p.alloc(id, k1, k2)
	p.place(p.hash(id), h)
	p.count++
	return h
}

func (p *participants) place(hv uint64, h uint32) {
	mask := uint64(len(p.slots) - 1)
	i := hv & mask
	for p.slots[i] != 0 {
		i = (i + 1) & mask
	}
	p.slots[i] = hv>>32<<32 | uint64(h+1)
}

func (p *participants) rehash(n int) {
	old := p.slots
	p.slots = make([]uint64, n)
	for _, s := range old {
		if s != 0 {
			h := uint32(s) - 1
			p.place(maphash.Bytes(p.seed, p.idBytes(h)), h)
		}
	}
}

// remove deletes id and returns the handle it had. The record's bytes become a
// hole in the arena until compact reclaims them.
func (p *participants) remove(id string) (uint32, bool) {
	hv := p.hash(id)
	tag := hv >> 32
	mask := uint64(len(p.slots) - 1)
	i := hv & mask
	for {
		s := p.slots[i]
		if s == 0 {
			return 0, false
		}
		if s>>32 == tag && string(p.idBytes(uint32(s)-1)) == id {
			break
		}
		i = (i + 1) & mask
	}
	h := uint32(p.slots[i]) - 1
	// Backward-shift deletion: move later members of the probe run into the
	// hole so that lookups never need tombstones.
	for j := (i + 1) & mask; p.slots[j] != 0; j = (j + 1) & mask {
		home := maphash.Bytes(p.seed, p.idBytes(uint32(p.slots[j])-1)) & mask
		// Move slot j to i when its home is not in the cyclic range (i, j].
		if (j-home)&mask >= (j-i)&mask {
			p.slots[i] = p.slots[j]
			i = j
		}
	}
	p.slots[i] = 0
	p.count--
	p.dead += recordSize(len(p.idBytes(h)))
	return h, true
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

// warm loads the index slots and then the records of ids, and returns a value
// derived from them so the loads cannot be optimised away. The loads of one
// pass do not depend on each other, so the processor overlaps their cache
// misses; a run of Submit calls on the same ids afterwards finds both in
// cache instead of waiting for two misses each, one after the other.
func (p *participants) warm(ids []string, hashes []uint64) uint64 {
	mask := uint64(len(p.slots) - 1)
	var sink uint64
	for i, id := range ids {
		hashes[i] = p.hash(id)
		sink += p.slots[hashes[i]&mask]
	}
	for _, hv := range hashes[:len(ids)] {
		if s := p.slots[hv&mask]; s != 0 && s>>32 == hv>>32 {
			sink += uint64(p.rec(uint32(s) - 1)[0])
		}
	}
	return sink
}

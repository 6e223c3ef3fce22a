package bus

import (
	"encoding/binary"
	"errors"
)

// Limits the decoders enforce (the API allows ids of up to 128 characters).
const (
	MaxBoardLen   = 1024
	MaxSegmentLen = 4096
	maxIDLen      = 1024 // participant ids and epochs
)

// Format bytes: the first byte of every encoded value. A new layout gets a new
// byte, and decoders keep reading the old ones while both can be on the topic.
const (
	eventFormat1 = 0x01
	frameFormat1 = 0x01
)

// ErrMalformed is returned by the decoders for bytes they cannot read.
var ErrMalformed = errors.New("bus: malformed record")

// Event value (record key: the leaderboard id), all integers varints:
//
//	0x01  uvarint len, epoch  uvarint len, leaderboard  uvarint version
//	uvarint len, participant  byte flags (1 removed, 2 had_old)
//	uvarint old_score  zigzag old_rank  uvarint new_score  zigzag new_rank
//	zigzag achieved_at
//
// About 30 bytes plus the ids.

// AppendEvent appends e's encoding to b.
func AppendEvent(b []byte, e *Event) []byte {
	b = append(b, eventFormat1)
	b = appendString(b, e.Epoch)
	b = appendString(b, e.Leaderboard)
	b = binary.AppendUvarint(b, e.Version)
	b = appendString(b, e.ParticipantID)
	var flags byte
	if e.Removed {
		flags |= 1
	}
	if e.HadOld {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, e.OldScore)
	b = binary.AppendVarint(b, e.OldRank)
	b = binary.AppendUvarint(b, e.NewScore)
	b = binary.AppendVarint(b, e.NewRank)
	return binary.AppendVarint(b, e.AchievedAt)
}

// EncodeEvent returns e's encoding.
func EncodeEvent(e *Event) []byte {
	return AppendEvent(make([]byte, 0, 40+len(e.Epoch)+len(e.Leaderboard)+len(e.ParticipantID)), e)
}

// DecodeEvent reads an event value. Strings are copied out of b.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	r := reader{b: b}
	if r.byte() != eventFormat1 {
		return e, ErrMalformed
	}
	e.Epoch = string(r.bytes(maxIDLen))
	e.Leaderboard = string(r.bytes(MaxBoardLen))
	e.Version = r.uvarint()
	e.ParticipantID = string(r.bytes(maxIDLen))
	flags := r.byte()
	if flags&^3 != 0 {
		r.bad = true
	}
	e.Removed, e.HadOld = flags&1 != 0, flags&2 != 0
	e.OldScore = r.uvarint()
	e.OldRank = r.varint()
	e.NewScore = r.uvarint()
	e.NewRank = r.varint()
	e.AchievedAt = r.varint()
	if r.bad || len(r.b) != 0 || e.Leaderboard == "" {
		return Event{}, ErrMalformed
	}
	return e, nil
}

// Frame envelope (record key: the leaderboard id):
//
//	0x01  byte kind  uvarint len, leaderboard  uvarint len, segment
//	uvarint version  uvarint prev_version  payload (the rest)
//
// A binary header rather than JSON: it is read for every frame by every
// gateway watching the leaderboard, and the payload (already JSON for the
// clients) follows without escaping or copying.

// AppendFrame appends f's envelope to b.
func AppendFrame(b []byte, f *Frame) []byte {
	b = append(b, frameFormat1, f.Kind)
	b = appendString(b, f.Board)
	b = appendString(b, f.Segment)
	b = binary.AppendUvarint(b, f.Version)
	b = binary.AppendUvarint(b, f.PrevVersion)
	return append(b, f.Payload...)
}

// EncodeFrame returns f's envelope.
func EncodeFrame(f *Frame) []byte {
	return AppendFrame(make([]byte, 0, 24+len(f.Board)+len(f.Segment)+len(f.Payload)), f)
}

// DecodeFrame reads a frame envelope. Board and Segment are copied; Payload
// aliases b.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	r := reader{b: b}
	if r.byte() != frameFormat1 {
		return f, ErrMalformed
	}
	f.Kind = r.byte()
	f.Board = string(r.bytes(MaxBoardLen))
	f.Segment = string(r.bytes(MaxSegmentLen))
	f.Version = r.uvarint()
	f.PrevVersion = r.uvarint()
	if r.bad || f.Board == "" {
		return Frame{}, ErrMalformed
	}
	f.Payload = r.b
	return f, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader consumes b; any error sets bad, after which every read returns zero.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) byte() byte {
	if r.bad || len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) { // malformed, or not minimal: one value, one encoding
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(max int) []byte {
	n := r.uvarint()
	if r.bad || n > uint64(max) || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// PartitionFor is the partition of a leaderboard's records in a topic of n
// partitions: Kafka's default key partitioner (murmur2 of the key, sign bit
// cleared, modulo n), which the Kafka producer uses and Java clients agree
// with.
func PartitionFor(board string, n int) int32 {
	if n <= 0 {
		return 0
	}
	return int32(int(murmur2(board)&0x7fffffff) % n)
}

// murmur2 is Kafka's hash of record keys (Utils.murmur2).
func murmur2(s string) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(s)
	h := uint32(seed) ^ uint32(n)
	i := 0
	for ; n-i >= 4; i += 4 {
		k := uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch n - i {
	case 3:
		h ^= uint32(s[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(s[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(s[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

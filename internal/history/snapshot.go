package history

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/lbhq/leaderboard/internal/store"
)

// The snapshot codec: a live ranking as one compact blob, read back in one
// sequential pass at start-up (one row per participant would make recovery of
// a million participants a million-row query).
//
//	"LBS1" | uvarint count | count × (uvarint len(id) | id | uvarint score | uvarint achieved_at) | crc32c (4 bytes, little endian)
//
// The checksum covers everything before it, so a torn or damaged blob is an
// error at start-up, never a silently smaller leaderboard.
const snapshotMagic = "LBS1"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSnapshot is returned by DecodeSnapshot for a blob that is not a
// whole, intact snapshot.
var ErrCorruptSnapshot = errors.New("corrupt snapshot")

// SnapshotEncoder appends entries to a snapshot blob; Finish seals it.
type SnapshotEncoder struct {
	buf   []byte
	count int
}

// Add appends one participant.
func (e *SnapshotEncoder) Add(id string, score uint64, achievedAt int64) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(id)))
	e.buf = append(e.buf, id...)
	e.buf = binary.AppendUvarint(e.buf, score)
	e.buf = binary.AppendUvarint(e.buf, uint64(achievedAt))
	e.count++
}

// Finish returns the blob.
func (e *SnapshotEncoder) Finish() []byte {
	out := make([]byte, 0, len(snapshotMagic)+binary.MaxVarintLen64+len(e.buf)+4)
	out = append(out, snapshotMagic...)
	out = binary.AppendUvarint(out, uint64(e.count))
	out = append(out, e.buf...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
}

// EncodeSnapshot encodes entries (their ranks are not kept).
func EncodeSnapshot(entries []store.Entry) []byte {
	var e SnapshotEncoder
	for i := range entries {
		e.Add(entries[i].ParticipantID, entries[i].Score, entries[i].AchievedAt)
	}
	return e.Finish()
}

// DecodeSnapshot calls fn for every participant of a blob, in the order they
// were added. The checksum is verified before the first call; any error
// means the snapshot must not be used.
func DecodeSnapshot(data []byte, fn func(id string, score uint64, achievedAt int64)) error {
	if len(data) < len(snapshotMagic)+1+4 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("%w: bad header", ErrCorruptSnapshot)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCorruptSnapshot)
	}
	p := body[len(snapshotMagic):]
	count, n := binary.Uvarint(p)
	if n <= 0 || count > uint64(len(p)) {
		return fmt.Errorf("%w: bad count", ErrCorruptSnapshot)
	}
	p = p[n:]
	for i := uint64(0); i < count; i++ {
		idLen, n := binary.Uvarint(p)
		if n <= 0 || idLen == 0 || idLen > 255 || uint64(len(p)-n) < idLen {
			return fmt.Errorf("%w: bad participant %d", ErrCorruptSnapshot, i)
		}
		id := string(p[n : n+int(idLen)])
		p = p[n+int(idLen):]
		score, n := binary.Uvarint(p)
		if n <= 0 || score > store.MaxScore {
			return fmt.Errorf("%w: bad score of participant %d", ErrCorruptSnapshot, i)
		}
		p = p[n:]
		at, n := binary.Uvarint(p)
		if n <= 0 || at > uint64(store.MaxAchievedAt) {
			return fmt.Errorf("%w: bad achieved_at of participant %d", ErrCorruptSnapshot, i)
		}
		p = p[n:]
		fn(id, score, int64(at))
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorruptSnapshot, len(p))
	}
	return nil
}

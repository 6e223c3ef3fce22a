package history

import (
	"errors"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
)

func TestSnapshotRoundTripAndDamage(t *testing.T) {
	in := []store.Entry{{ParticipantID: "a", Score: store.MaxScore, AchievedAt: store.MaxAchievedAt}, {ParticipantID: "b:c.d-e_f", Score: 0, AchievedAt: 0}}
	data := EncodeSnapshot(in)
	var out []store.Entry
	if err := DecodeSnapshot(data, func(id string, s uint64, at int64) {
		out = append(out, store.Entry{ParticipantID: id, Score: s, AchievedAt: at})
	}); err != nil || len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip: %v, %v", out, err)
	}
	for i := range data { // every single-byte change is caught
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x40
		if err := DecodeSnapshot(bad, func(string, uint64, int64) {}); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for n := 0; n < len(data); n++ { // and every truncation
		if err := DecodeSnapshot(data[:n], func(string, uint64, int64) {}); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

// FuzzDecodeSnapshot: no blob crashes the decoder or yields an out-of-range entry.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(EncodeSnapshot(nil))
	f.Add(EncodeSnapshot([]store.Entry{{ParticipantID: "x", Score: 5, AchievedAt: 9}}))
	f.Add([]byte("LBS1\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = DecodeSnapshot(data, func(id string, s uint64, at int64) {
			if id == "" || len(id) > 255 || s > store.MaxScore || at < 0 || at > store.MaxAchievedAt {
				t.Fatalf("bad entry %q %d %d", id, s, at)
			}
		})
	})
}

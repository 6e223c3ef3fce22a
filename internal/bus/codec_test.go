package bus

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lbhq/leaderboard/internal/store"
)

func randomEvent(rng *rand.Rand) Event {
	id := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcXYZ019_.:-"[rng.IntN(13)]
		}
		return string(b)
	}
	return Event{Epoch: id(rng.IntN(40)), Event: store.Event{
		Leaderboard: id(1 + rng.IntN(128)), Version: rng.Uint64(), ParticipantID: id(rng.IntN(128)),
		Removed: rng.IntN(2) == 0, HadOld: rng.IntN(2) == 0, OldScore: rng.Uint64N(store.MaxScore + 1),
		OldRank: rng.Int64() - math.MaxInt64/2, NewScore: rng.Uint64(), NewRank: rng.Int64(), AchievedAt: -rng.Int64(),
	}}
}

func TestEventRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		e := randomEvent(rng)
		got, err := DecodeEvent(EncodeEvent(&e))
		if err != nil || got != e {
			t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		p := make([]byte, rng.IntN(300))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		f := Frame{Board: string(p[:min(len(p), 1+rng.IntN(MaxBoardLen))]) + "b", Segment: string(p[:len(p)/2]),
			Kind: uint8(rng.Uint32()), Version: rng.Uint64(), PrevVersion: rng.Uint64(), Payload: p}
		enc := EncodeFrame(&f)
		got, err := DecodeFrame(enc)
		if err != nil || got.Board != f.Board || got.Segment != f.Segment || got.Kind != f.Kind ||
			got.Version != f.Version || got.PrevVersion != f.PrevVersion || !bytes.Equal(got.Payload, f.Payload) {
			t.Fatalf("round trip of %+v: %+v, %v", f, got, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	e := Event{Epoch: "e", Event: store.Event{Leaderboard: "b", Version: 3}}
	enc := EncodeEvent(&e)
	for i := range len(enc) {
		if _, err := DecodeEvent(enc[:i]); err == nil {
			t.Errorf("event cut to %d bytes decoded", i)
		}
	}
	if _, err := DecodeEvent(append(enc, 0)); err == nil {
		t.Error("event with a trailing byte decoded")
	}
	f := Frame{Board: "b", Segment: "top:10", Version: 2, PrevVersion: 1}
	fenc := EncodeFrame(&f)
	for i := range len(fenc) {
		if _, err := DecodeFrame(fenc[:i]); err == nil {
			t.Errorf("frame cut to %d bytes decoded", i)
		}
	}
	bad := [][]byte{
		{0x02, 0, 1, 'b', 0, 0, 0},                     // unknown format
		{0x01, 0, 0, 0, 0, 0},                          // empty board
		append([]byte{0x01, 0, 0xff, 0xff, 0x03}, 'b'), // board longer than the limit
	}
	for _, b := range bad {
		if _, err := DecodeFrame(b); err == nil {
			t.Errorf("%x decoded", b)
		}
	}
}

// PartitionFor is Kafka's default key partitioner, as franz-go implements it.
func TestPartitionForMatchesKafkaPartitioner(t *testing.T) {
	kp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		key := make([]byte, i%40)
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		for _, n := range []int{1, 2, 7, 16, 64, 1000} {
			want := kp.Partition(&kgo.Record{Key: key}, n)
			if got := PartitionFor(string(key), n); int(got) != want {
				t.Fatalf("PartitionFor(%x, %d) = %d, Kafka's partitioner %d", key, n, got, want)
			}
		}
	}
	// Known murmur2 values from Kafka's own tests (UtilsTest.testMurmur2).
	for s, want := range map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107} {
		if got := int32(murmur2(s)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", s, got, want)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(EncodeFrame(&Frame{Board: "b", Segment: "top:100", Kind: 1, Version: 7, PrevVersion: 6, Payload: []byte(`{"x":1}`)}))
	f.Add([]byte{0x01})
	f.Add([]byte{0x01, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		if fr.Board == "" || len(fr.Board) > MaxBoardLen || len(fr.Segment) > MaxSegmentLen {
			t.Fatalf("decoded a frame outside the limits: %+v", fr)
		}
		// What decodes re-encodes to the same bytes: one frame, one encoding.
		if enc := EncodeFrame(&fr); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gave %x", b, enc)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(EncodeEvent(&Event{Epoch: "e", Event: store.Event{Leaderboard: "b", Version: 1, ParticipantID: "p", NewScore: 5, NewRank: 1}}))
	f.Add([]byte{0x01, 0, 1, 'b'})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			return
		}
		if enc := EncodeEvent(&e); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %x gave %x", b, enc)
		}
	})
}

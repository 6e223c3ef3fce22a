package gateway

import (
	"bytes"
	"testing"

	"github.com/lbhq/leaderboard/internal/fanout"
)

// The header the pool writers put in front of a frame, at each length boundary of RFC 6455's
// three length encodings.
func TestAppendTextHeader(t *testing.T) {
	cases := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xFF, 0xFF}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	}
	for _, c := range cases {
		if got := appendTextHeader(nil, c.n); !bytes.Equal(got, c.want) {
			t.Errorf("header for %d bytes = % x, want % x", c.n, got, c.want)
		}
	}
}

// A writer reuses the bytes it built only for the same body after the same prefix.
func TestWireFramesReuse(t *testing.T) {
	body := []byte(`,"version":2}`)
	a := fanout.Frame{Prefix: fanout.Prefix("update", "a"), Body: body}
	var w wireFrames
	first := w.frame(a)
	want := append(appendTextHeader(nil, a.Len()), a.AppendJSON(nil)...)
	if !bytes.Equal(first, want) {
		t.Fatalf("frame = %q, want %q", first, want)
	}
	if again := w.frame(fanout.Frame{Prefix: fanout.Prefix("update", "a"), Body: body}); &again[0] != &first[0] {
		t.Error("the same body after an equal prefix was built again")
	}
	b := fanout.Frame{Prefix: fanout.Prefix("update", "b"), Body: body}
	if got := w.frame(b); !bytes.Equal(got, append(appendTextHeader(nil, b.Len()), b.AppendJSON(nil)...)) {
		t.Errorf("another prefix: frame = %q", got)
	}
	same := append([]byte(nil), body...) // equal bytes, another array: another segment's body
	if got := w.frame(fanout.Frame{Prefix: b.Prefix, Body: same}); &got[0] == &first[0] {
		t.Error("a different body array reused a cached frame")
	}
}

package fanout

import "testing"

func TestSpecKeyRoundTrip(t *testing.T) {
	for _, s := range []Spec{{Kind: Top, Limit: 100}, {Kind: Participant, ParticipantID: "p:1.x-y"}, {Kind: Around, Radius: 5, ParticipantID: "a:b"}} {
		got, err := ParseSpecKey(s.Key())
		if err != nil || got != s {
			t.Fatalf("%+v -> %q -> %+v, %v", s, s.Key(), got, err)
		}
	}
	for _, k := range []string{"", "t:", "t:x", "t:0", "t:100000", "p:", "p:a b", "a:5", "a:x:p", "a:5:", "z:1", "a:1000:p"} {
		if _, err := ParseSpecKey(k); err == nil {
			t.Errorf("ParseSpecKey(%q) accepted", k)
		}
	}
}

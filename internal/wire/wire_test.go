package wire

import (
	"encoding/json"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
)

// Display names are free text (docs/API.md, "Profile"): the hand-written
// string must be what encoding/json writes, byte for byte, for every kind of
// character it treats specially, including U+2028 and U+2029 (written raw,
// they end a string literal in pre-ES2019 JavaScript) and invalid UTF-8
// (which would make the whole body invalid JSON text).
func TestStringEscapesLikeEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "Ada", `quote " and \ backslash`, "tab\tnew\nline\r", "<b>&amp;</b>", "nul\x00 unit\x1f del\x7f",
		"line\u2028para\u2029", "😀 é 漢字 \u0085 \ufeff \ufffd", "bad\xff", "cut\xe2\x80", "\xed\xa0\x80 surrogate",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := String(nil, s); string(got) != string(want) {
			t.Errorf("String(%q) = %s, encoding/json %s", s, got, want)
		}
	}
}

func TestEntryWithDisplayNameMatchesEncodingJSON(t *testing.T) {
	e := store.Entry{Rank: 2, ParticipantID: "p1", Score: 7, AchievedAt: 9, DisplayName: "Ada \"\u2028\" \xff"}
	want, _ := json.Marshal(struct {
		Rank          int64  `json:"rank"`
		ParticipantID string `json:"participant_id"`
		Score         uint64 `json:"score"`
		AchievedAt    int64  `json:"achieved_at"`
		DisplayName   string `json:"display_name,omitempty"`
	}{e.Rank, e.ParticipantID, e.Score, e.AchievedAt, e.DisplayName})
	if got := Entry(nil, &e); string(got) != string(want) {
		t.Fatalf("Entry = %s, encoding/json %s", got, want)
	}
}

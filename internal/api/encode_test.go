package api

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/wire"
)

// The hand-written encoders must produce exactly what encoding/json would for
// the same documented shape; these tests compare the two on random values.

type entryJSON struct {
	Rank          int64  `json:"rank"`
	ParticipantID string `json:"participant_id"`
	Score         uint64 `json:"score"`
	AchievedAt    int64  `json:"achieved_at"`
	DisplayName   string `json:"display_name,omitempty"`
}

func toEntries(es []store.Entry) []entryJSON {
	out := make([]entryJSON, 0, len(es))
	for _, e := range es {
		out = append(out, entryJSON{e.Rank, e.ParticipantID, e.Score, e.AchievedAt, e.DisplayName})
	}
	return out
}

func randID(rng *rand.Rand) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
	b := make([]byte, 1+rng.IntN(128))
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// nameParts are pieces of display names that JSON must escape, or that
// encoding/json escapes beyond what JSON requires (HTML characters, the JS
// line terminators U+2028 and U+2029, invalid UTF-8 as U+FFFD).
var nameParts = []string{"Ada", " ", `"`, `\`, "<", ">", "&", "\u2028", "\u2029", "😀", "é", "漢字", "\x00", "\x1f", "\x7f", "\u0085", "\ufeff", "\xff", "\xe2\x80", "\ufffd"}

func randName(rng *rand.Rand) string {
	var b strings.Builder
	for n := rng.IntN(6); n >= 0; n-- {
		b.WriteString(nameParts[rng.IntN(len(nameParts))])
	}
	return b.String()
}

func randEntries(rng *rand.Rand) []store.Entry {
	es := make([]store.Entry, rng.IntN(5))
	for i := range es {
		es[i] = store.Entry{Rank: rng.Int64N(1 << 40), ParticipantID: randID(rng), Score: rng.Uint64N(store.MaxScore + 1), AchievedAt: rng.Int64N(store.MaxAchievedAt)}
		if rng.IntN(2) == 0 {
			es[i].DisplayName = randName(rng)
		}
	}
	return es
}

func sameJSON(t *testing.T, got []byte, want any) {
	t.Helper()
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(w) {
		t.Fatalf("hand encoding differs:\n got %s\nwant %s", got, w)
	}
}

func TestEncodersMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 500; i++ {
		board, epoch := randID(rng), randID(rng)
		r := store.Result{Updated: rng.IntN(2) == 0, Score: rng.Uint64N(store.MaxScore + 1), AchievedAt: rng.Int64N(1 << 43),
			Rank: rng.Int64N(1 << 30), HadPrevious: rng.IntN(2) == 0, PreviousScore: rng.Uint64N(1 << 53), PreviousRank: rng.Int64N(1 << 30), Version: rng.Uint64()}
		pid := randID(rng)
		var prevScore *uint64
		var prevRank *int64
		if r.HadPrevious {
			prevScore, prevRank = &r.PreviousScore, &r.PreviousRank
		}
		sameJSON(t, appendResult(nil, board, pid, &r), struct {
			LeaderboardID string  `json:"leaderboard_id"`
			ParticipantID string  `json:"participant_id"`
			Score         uint64  `json:"score"`
			PreviousScore *uint64 `json:"previous_score"`
			Rank          int64   `json:"rank"`
			PreviousRank  *int64  `json:"previous_rank"`
			Updated       bool    `json:"updated"`
			Version       uint64  `json:"version"`
			AchievedAt    int64   `json:"achieved_at"`
		}{board, pid, r.Score, prevScore, r.Rank, prevRank, r.Updated, r.Version, r.AchievedAt})

		p := store.Page{Version: rng.Uint64(), Total: rng.Int64N(1 << 40), Entries: randEntries(rng)}
		sameJSON(t, appendPage(nil, board, epoch, &p), struct {
			LeaderboardID string      `json:"leaderboard_id"`
			Version       uint64      `json:"version"`
			Epoch         string      `json:"epoch"`
			Total         int64       `json:"total_participants"`
			Entries       []entryJSON `json:"entries"`
		}{board, p.Version, epoch, p.Total, toEntries(p.Entries)})

		v := store.ParticipantView{Version: rng.Uint64(), Total: rng.Int64N(1 << 40), Neighbors: randEntries(rng)}
		v.Entry = store.Entry{Rank: 3, ParticipantID: pid, Score: rng.Uint64N(1 << 53), AchievedAt: 9}
		if rng.IntN(2) == 0 {
			v.Entry.DisplayName = randName(rng)
		}
		sameJSON(t, appendParticipant(nil, board, epoch, &v), struct {
			LeaderboardID string      `json:"leaderboard_id"`
			ParticipantID string      `json:"participant_id"`
			Rank          int64       `json:"rank"`
			Score         uint64      `json:"score"`
			AchievedAt    int64       `json:"achieved_at"`
			DisplayName   string      `json:"display_name,omitempty"`
			Version       uint64      `json:"version"`
			Epoch         string      `json:"epoch"`
			Total         int64       `json:"total_participants"`
			Neighbors     []entryJSON `json:"neighbors"`
		}{board, pid, 3, v.Entry.Score, 9, v.Entry.DisplayName, v.Version, epoch, v.Total, toEntries(v.Neighbors)})
	}
}

func TestErrorEncodingEscapes(t *testing.T) {
	type errBody struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	for _, msg := range []string{"plain", `quote " and \ backslash`, "tab\tnew\nline\r", "<html>&", "ctl\x01\x1f", "é ü 漢字", strings.Repeat("x", 300)} {
		var got errBody
		b := wire.Error(nil, "invalid_argument", msg)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON for %q: %s", msg, b)
		}
		if got.Error.Message != msg || got.Error.Code != "invalid_argument" {
			t.Fatalf("round trip of %q gave %+v", msg, got.Error)
		}
		want := errBody{}
		want.Error.Code, want.Error.Message = "invalid_argument", msg
		if !reflect.DeepEqual(got, want) {
			t.Fatal("mismatch")
		}
	}
}

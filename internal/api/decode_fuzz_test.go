package api

import (
	"errors"
	"testing"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
)

// The decoders take untrusted bytes: whatever they get, they must not panic,
// and they either return a value inside the documented bounds or an
// invalid_argument error.

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	var e *board.Error
	if !errors.As(err, &e) || e.Code != board.CodeInvalidArgument || e.Message == "" {
		t.Fatalf("decoder error %v is not an invalid_argument with a message", err)
	}
}

func checkInput(t *testing.T, in board.ScoreInput) {
	t.Helper()
	if !board.ValidID(in.ParticipantID) || in.Score > store.MaxScore || (in.HasTimestamp && (in.Timestamp < 0 || in.Timestamp > store.MaxAchievedAt)) {
		t.Fatalf("decoder accepted an out-of-bounds input %+v", in)
	}
}

func FuzzDecodeScore(f *testing.F) {
	for _, s := range []string{
		`{"participant_id":"p1","score":15000}`,
		`{"participant_id":"p1","score":15000,"timestamp":1732600000000}`,
		`{"participant_id":"p1","score":9007199254740991}`,
		`{"participant_id":"p1","score":9007199254740992}`,
		`{"participant_id":"p1","score":-1}`, `{"participant_id":"p1","score":1.5}`, `{"participant_id":"p1","score":"1"}`,
		`{"participant_id":5}`, `{}`, `[]`, `null`, ``, `{"participant_id":"p1","score":01}`,
		`{"participant_id":"p1","score":1,"timestamp":-1}`, "{\"participant_id\":\"\xff\",\"score\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeScore(body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		checkInput(t, in)
	})
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"scores":[{"participant_id":"a","score":1},{"participant_id":"b","score":2,"timestamp":3}]}`,
		`{"scores":[1,"x",null,{}]}`, `{"scores":[]}`, `{"scores":{}}`, `{}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ins, errs, err := decodeBatch(body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if len(ins) == 0 || len(ins) > board.MaxBatch || len(errs) != len(ins) {
			t.Fatalf("batch of %d inputs and %d errors", len(ins), len(errs))
		}
		for i := range ins {
			if errs[i] != nil {
				checkDecodeErr(t, errs[i])
				continue
			}
			checkInput(t, ins[i])
		}
	})
}

func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{
		`{"leaderboard_id":"a","name":"A","type":"season","sort_order":"asc","update_policy":"best","starts_at":"2026-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z","max_score":100,"config":{"k":1}}`,
		`{"name":"x","config":[1]}`, `{"name":"x","max_score":-1}`, `{"name":"x","starts_at":"never"}`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeCreate(body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if req.ID != "" && !board.ValidID(req.ID) {
			t.Fatalf("accepted id %q", req.ID)
		}
		if req.MaxScore != nil && *req.MaxScore > store.MaxScore {
			t.Fatalf("accepted max_score %d", *req.MaxScore)
		}
		if len(req.Config) > 0 && req.Config[0] != '{' {
			t.Fatalf("accepted config %s", req.Config)
		}
	})
}

func FuzzDecodePatch(f *testing.F) {
	for _, s := range []string{`{"status":"paused"}`, `{"name":"n","ends_at":"2027-01-01T00:00:00Z"}`, `{"ends_at":null}`, `{"ends_at":5}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := decodePatch(body); err != nil {
			checkDecodeErr(t, err)
		}
	})
}

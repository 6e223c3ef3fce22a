package api

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
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

func FuzzDecodeProfile(f *testing.F) {
	for _, s := range []string{`{"display_name":"Ada"}`, `{"display_name":"A","avatar_url":"https://x/y.png","metadata":{"k":[1]}}`,
		`{"display_name":null}`, `{"display_name":"a","metadata":[1]}`, `{"display_name":"a","metadata":"x"}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeProfile(body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if len(in.Metadata) > 0 && string(in.Metadata) != "null" && in.Metadata[0] != '{' {
			t.Fatalf("accepted metadata %s", in.Metadata)
		}
	})
}

// FuzzQuery: any query string gives the list, rankings and participant
// parameters within their documented bounds or an invalid_argument error;
// If-None-Match lists and Authorization headers never panic.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		"status=active&limit=10&offset=20", "limit=1000", "limit=1001", "limit=0", "limit=-1", "limit=1e3",
		"around=p1&limit=11", "around=&limit=5", "around=p1&offset=3", "around=a%20b", "offset=2147483647",
		"offset=2147483648", "neighbors=100", "neighbors=101", "limit=%zz", "a=1&a=2&limit=3&limit=4", ";;&&==", "",
		"limit=%zz&limit=5", "li%6Dit=7&limit=8", "limit=1;x&limit=2", "limit", "=5&limit=+9", "around=a+b&around=c",
		strings.Repeat("x=1&", 20) + "limit=3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// The handlers' query reads what url.Values does, without the map.
		values, _ := url.ParseQuery(raw) // r.URL.Query(): malformed pairs dropped
		q := parseQuery(raw)
		names := []string{"status", "limit", "offset", "around", "neighbors", "access_token", ""}
		for name := range values {
			names = append(names, name)
		}
		for _, name := range names {
			if q.Get(name) != values.Get(name) || q.Has(name) != values.Has(name) {
				t.Fatalf("query %q, name %q: Get %q, Has %v; url.Values: %q, %v", raw, name, q.Get(name), q.Has(name), values.Get(name), values.Has(name))
			}
		}
		if lq, err := parseListQuery(q); err != nil {
			checkDecodeErr(t, err)
		} else if lq.limit < 1 || lq.limit > 1000 || lq.offset < 0 || (lq.status != "" && !validStatus[lq.status]) {
			t.Fatalf("list query %+v", lq)
		}
		if rq, err := parseRankingsQuery(q); err != nil {
			checkDecodeErr(t, err)
		} else if rq.limit < 1 || rq.limit > 1000 || rq.offset < 0 || (q.Has("around") && !board.ValidID(rq.around)) || (rq.around != "" && rq.offset != 0) {
			t.Fatalf("rankings query %+v", rq)
		}
		if n, err := queryInt(q, "neighbors", 2, 0, 100); err != nil {
			checkDecodeErr(t, err)
		} else if n < 0 || n > 100 {
			t.Fatalf("neighbors %d", n)
		}
		for _, tag := range splitTags(raw) {
			if tag == "" || len(tag) > len(raw) {
				t.Fatalf("tag %q of %q", tag, raw)
			}
		}
		r := &http.Request{Header: http.Header{"Authorization": {raw}}, URL: &url.URL{RawQuery: raw}}
		if tok := bearer(r, accessUpgrade); len(tok) > len(raw) && tok != "\x00" {
			t.Fatalf("token %q from %q", tok, raw)
		}
	})
}

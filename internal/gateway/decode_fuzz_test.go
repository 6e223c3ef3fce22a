package gateway

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/fanout"
)

// FuzzDecodeClientMessage: any bytes give either a valid message or an
// invalid_argument error; an accepted subscribe always has a valid spec and id.
func FuzzDecodeClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","id":"a","kind":"top","limit":100,"since_version":1040,"epoch":"e"}`,
		`{"type":"subscribe","id":"b","kind":"participant","participant_id":"p1"}`,
		`{"type":"subscribe","id":"c","kind":"around","participant_id":"p1","radius":5}`,
		`{"type":"unsubscribe","id":"a"}`, `{"type":"ping"}`, `{"type":"subscribe"}`, `[]`, `null`, ``, `{"type":1}`,
		`{"type":"subscribe","id":"a","kind":"top","limit":-1}`, `{"type":"subscribe","id":"a","kind":"around","participant_id":"p","radius":99}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, spec, err := decodeClientMessage(data)
		if err != nil {
			var be *board.Error
			if !errors.As(err, &be) || be.Code != board.CodeInvalidArgument || be.Message == "" {
				t.Fatalf("error %v is not an invalid_argument with a message", err)
			}
			return
		}
		switch m.Type {
		case "ping":
		case "unsubscribe":
			if !validSubID(m.ID) {
				t.Fatalf("accepted id %q", m.ID)
			}
		case "subscribe":
			if !validSubID(m.ID) || spec.Validate() != nil {
				t.Fatalf("accepted %+v %+v", m, spec)
			}
			if spec.Kind != fanout.Top && !board.ValidID(spec.ParticipantID) {
				t.Fatalf("accepted participant %q", spec.ParticipantID)
			}
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
	})
}

// FuzzQuery: the query of SSE streams and long polls (kind, limit,
// participant_id, radius, since_version, timeout_ms) gives a valid window or
// an invalid_argument error, whatever the bytes.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		"kind=top&limit=100", "kind=participant&participant_id=p1", "kind=around&participant_id=p1&radius=5",
		"kind=top&limit=0", "kind=top&limit=99999999999999999999", "kind=around&radius=-1&participant_id=p",
		"kind=bogus", "since_version=18446744073709551615", "since_version=-1", "timeout_ms=60000", "timeout_ms=0",
		"timeout_ms=1e3", "participant_id=%00", "", "&&&", "kind=top&kind=around",
	} {
		f.Add(s)
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		var be *board.Error
		if !errors.As(err, &be) || be.Code != board.CodeInvalidArgument || be.Message == "" {
			t.Fatalf("error %v is not an invalid_argument with a message", err)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		if spec, err := specFromQuery(q); err != nil {
			check(t, err)
		} else if spec.Validate() != nil || (spec.Kind != fanout.Top && !board.ValidID(spec.ParticipantID)) {
			t.Fatalf("accepted %+v", spec)
		}
		if _, err := parseVersion("since_version", q.Get("since_version")); err != nil {
			check(t, err)
		}
		if d, err := pollTimeout(q); err != nil {
			check(t, err)
		} else if d < time.Millisecond || d > time.Minute {
			t.Fatalf("timeout %v", d)
		}
	})
}

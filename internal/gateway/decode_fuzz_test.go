package gateway

import (
	"errors"
	"testing"

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

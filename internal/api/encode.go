package api

import (
	"strconv"

	"github.com/lbhq/leaderboard/internal/store"
)

// The hot responses (a submission's result, a page of rankings, a participant
// with neighbours) are appended by hand into a reused buffer: they are most of
// the traffic, their shape is fixed, and ids need no escaping (they are limited
// to A-Z a-z 0-9 _ . : -). encode_test.go checks every one against
// encoding/json. Everything else goes through encoding/json.

func appendKey(b []byte, comma bool, key string) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendID(b []byte, id string) []byte {
	b = append(b, '"')
	b = append(b, id...)
	return append(b, '"')
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }
func appendInt(b []byte, v int64) []byte   { return strconv.AppendInt(b, v, 10) }

func appendEntry(b []byte, e *store.Entry) []byte {
	b = append(b, `{"rank":`...)
	b = appendInt(b, e.Rank)
	b = append(b, `,"participant_id":`...)
	b = appendID(b, e.ParticipantID)
	b = append(b, `,"score":`...)
	b = appendUint(b, e.Score)
	b = append(b, `,"achieved_at":`...)
	b = appendInt(b, e.AchievedAt)
	return append(b, '}')
}

func appendEntries(b []byte, es []store.Entry) []byte {
	b = append(b, '[')
	for i := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEntry(b, &es[i])
	}
	return append(b, ']')
}

// appendResult writes one submission result object.
func appendResult(b []byte, board, participant string, r *store.Result) []byte {
	b = append(b, `{"leaderboard_id":`...)
	b = appendID(b, board)
	b = append(b, `,"participant_id":`...)
	b = appendID(b, participant)
	b = append(b, `,"score":`...)
	b = appendUint(b, r.Score)
	b = append(b, `,"previous_score":`...)
	if r.HadPrevious {
		b = appendUint(b, r.PreviousScore)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"rank":`...)
	b = appendInt(b, r.Rank)
	b = append(b, `,"previous_rank":`...)
	if r.HadPrevious {
		b = appendInt(b, r.PreviousRank)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"updated":`...)
	b = strconv.AppendBool(b, r.Updated)
	b = append(b, `,"version":`...)
	b = appendUint(b, r.Version)
	b = append(b, `,"achieved_at":`...)
	b = appendInt(b, r.AchievedAt)
	return append(b, '}')
}

// appendPage writes a rankings response.
func appendPage(b []byte, board, epoch string, p *store.Page) []byte {
	b = append(b, `{"leaderboard_id":`...)
	b = appendID(b, board)
	b = append(b, `,"version":`...)
	b = appendUint(b, p.Version)
	b = append(b, `,"epoch":`...)
	b = appendID(b, epoch)
	b = append(b, `,"total_participants":`...)
	b = appendInt(b, p.Total)
	b = append(b, `,"entries":`...)
	b = appendEntries(b, p.Entries)
	return append(b, '}')
}

// appendParticipant writes a participant-with-neighbours response.
func appendParticipant(b []byte, board, epoch string, v *store.ParticipantView) []byte {
	b = append(b, `{"leaderboard_id":`...)
	b = appendID(b, board)
	b = append(b, `,"participant_id":`...)
	b = appendID(b, v.Entry.ParticipantID)
	b = append(b, `,"rank":`...)
	b = appendInt(b, v.Entry.Rank)
	b = append(b, `,"score":`...)
	b = appendUint(b, v.Entry.Score)
	b = append(b, `,"achieved_at":`...)
	b = appendInt(b, v.Entry.AchievedAt)
	b = append(b, `,"version":`...)
	b = appendUint(b, v.Version)
	b = append(b, `,"epoch":`...)
	b = appendID(b, epoch)
	b = append(b, `,"total_participants":`...)
	b = appendInt(b, v.Total)
	b = append(b, `,"neighbors":`...)
	b = appendEntries(b, v.Neighbors)
	return append(b, '}')
}

// appendError writes an error body. The message is escaped by strconv.Quote
// rules restricted to what JSON allows: messages are ASCII sentences the server
// writes, but may quote an id or value from the request.
func appendError(b []byte, code, message string) []byte {
	b = append(b, `{"error":{"code":`...)
	b = appendID(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	return append(b, `}}`...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string, escaping what JSON requires and
// the HTML-sensitive characters, like encoding/json.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

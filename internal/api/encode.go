package api

import (
	"strconv"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/wire"
)

// The hot responses (a submission's result, a page of rankings, a participant
// with neighbours) are appended by hand into a reused buffer with the helpers
// of package wire; encode_test.go checks every one against encoding/json.
// Everything else goes through encoding/json.

// appendResult writes one submission result object.
func appendResult(b []byte, board, participant string, r *store.Result) []byte {
	b = append(b, `{"leaderboard_id":`...)
	b = wire.ID(b, board)
	b = append(b, `,"participant_id":`...)
	b = wire.ID(b, participant)
	b = append(b, `,"score":`...)
	b = wire.Uint(b, r.Score)
	b = append(b, `,"previous_score":`...)
	if r.HadPrevious {
		b = wire.Uint(b, r.PreviousScore)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"rank":`...)
	b = wire.Int(b, r.Rank)
	b = append(b, `,"previous_rank":`...)
	if r.HadPrevious {
		b = wire.Int(b, r.PreviousRank)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"updated":`...)
	b = strconv.AppendBool(b, r.Updated)
	b = append(b, `,"version":`...)
	b = wire.Uint(b, r.Version)
	b = append(b, `,"achieved_at":`...)
	b = wire.Int(b, r.AchievedAt)
	return append(b, '}')
}

// appendPage writes a rankings response.
func appendPage(b []byte, board, epoch string, p *store.Page) []byte {
	b = append(b, `{"leaderboard_id":`...)
	b = wire.ID(b, board)
	b = append(b, `,"version":`...)
	b = wire.Uint(b, p.Version)
	b = append(b, `,"epoch":`...)
	b = wire.ID(b, epoch)
	b = append(b, `,"total_participants":`...)
	b = wire.Int(b, p.Total)
	b = append(b, `,"entries":`...)
	b = wire.Entries(b, p.Entries)
	return append(b, '}')
}

// appendParticipant writes a participant-with-neighbours response.
func appendParticipant(b []byte, board, epoch string, v *store.ParticipantView) []byte {
	b = append(b, `{"leaderboard_id":`...)
	b = wire.ID(b, board)
	b = append(b, `,"participant_id":`...)
	b = wire.ID(b, v.Entry.ParticipantID)
	b = append(b, `,"rank":`...)
	b = wire.Int(b, v.Entry.Rank)
	b = append(b, `,"score":`...)
	b = wire.Uint(b, v.Entry.Score)
	b = append(b, `,"achieved_at":`...)
	b = wire.Int(b, v.Entry.AchievedAt)
	if v.Entry.DisplayName != "" {
		// The participant's own name, as in its entries and in the live
		// "participant" frames: the Reader fills it like the neighbours'.
		b = append(b, `,"display_name":`...)
		b = wire.String(b, v.Entry.DisplayName)
	}
	b = append(b, `,"version":`...)
	b = wire.Uint(b, v.Version)
	b = append(b, `,"epoch":`...)
	b = wire.ID(b, epoch)
	b = append(b, `,"total_participants":`...)
	b = wire.Int(b, v.Total)
	b = append(b, `,"neighbors":`...)
	b = wire.Entries(b, v.Neighbors)
	return append(b, '}')
}

package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/wire"
)

// The History section of API.md: final rankings, a participant's results and
// audit log, and participant profiles.

// pageParams reads limit (1..1000, default def) and offset.
func pageParams(r *http.Request, def int) (limit, offset int, err error) {
	q := queryOf(r)
	if limit, err = queryInt(q, "limit", def, 1, 1000); err != nil {
		return 0, 0, err
	}
	offset, err = queryInt(q, "offset", 0, 0, 1<<31-1)
	return limit, offset, err
}

func rfc3339(t time.Time) string { return t.UTC().Format(timeFormat) }

func (a *API) finalRankings(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		return err
	}
	limit, offset, err := pageParams(r, 100)
	if err != nil {
		return err
	}
	at, entries, err := a.svc.FinalRankings(r.Context(), id, offset, limit)
	if err != nil {
		return err
	}
	b := make([]byte, 0, 96+100*len(entries))
	b = append(b, `{"leaderboard_id":`...)
	b = wire.ID(b, id)
	b = append(b, `,"finalized_at":`...)
	b = wire.String(b, rfc3339(at))
	b = append(b, `,"entries":`...)
	b = wire.Entries(b, entries)
	b = append(b, '}')
	writeJSONBytes(w, http.StatusOK, b)
	return nil
}

type resultJSON struct {
	LeaderboardID string `json:"leaderboard_id"`
	Name          string `json:"name"`
	Rank          int64  `json:"rank"`
	Score         uint64 `json:"score"`
	AchievedAt    int64  `json:"achieved_at"`
	FinalizedAt   string `json:"finalized_at"`
}

func (a *API) participantResults(w http.ResponseWriter, r *http.Request) error {
	pid, err := pathID(r, "pid", "participant id")
	if err != nil {
		return err
	}
	limit, offset, err := pageParams(r, 100)
	if err != nil {
		return err
	}
	rs, err := a.svc.Results(r.Context(), pid, offset, limit)
	if err != nil {
		return err
	}
	out := struct {
		Results []resultJSON `json:"results"`
	}{Results: make([]resultJSON, 0, len(rs))}
	for _, x := range rs {
		out.Results = append(out.Results, resultJSON{x.Leaderboard, x.Name, x.Rank, x.Score, x.AchievedAt, rfc3339(x.FinalizedAt)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// eventJSON is one audit-log record. old_* are null for a participant's first
// score; new_* are null when it was removed (removed: true).
type eventJSON struct {
	EventID   int64   `json:"event_id"`
	OldScore  *uint64 `json:"old_score"`
	NewScore  *uint64 `json:"new_score"`
	OldRank   *int64  `json:"old_rank"`
	NewRank   *int64  `json:"new_rank"`
	Removed   bool    `json:"removed"`
	Version   uint64  `json:"version"`
	Achieved  int64   `json:"achieved_at"`
	CreatedAt int64   `json:"created_at"`
}

func eventOf(e *history.Event) eventJSON {
	out := eventJSON{EventID: e.ID, Removed: e.Removed, Version: e.Version, Achieved: e.AchievedAt, CreatedAt: e.CreatedAt}
	if e.HadOld {
		out.OldScore, out.OldRank = &e.OldScore, &e.OldRank
	}
	if !e.Removed {
		out.NewScore, out.NewRank = &e.NewScore, &e.NewRank
	}
	return out
}

func (a *API) participantEvents(w http.ResponseWriter, r *http.Request) error {
	id, pid, err := boardAndParticipant(r)
	if err != nil {
		return err
	}
	limit, offset, err := pageParams(r, 100)
	if err != nil {
		return err
	}
	es, err := a.svc.Events(r.Context(), id, pid, offset, limit)
	if err != nil {
		return err
	}
	out := struct {
		Events []eventJSON `json:"events"`
	}{Events: make([]eventJSON, 0, len(es))}
	for i := range es {
		out.Events = append(out.Events, eventOf(&es[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type profileJSON struct {
	ParticipantID string          `json:"participant_id"`
	DisplayName   string          `json:"display_name"`
	AvatarURL     *string         `json:"avatar_url"`
	Metadata      json.RawMessage `json:"metadata"`
	UpdatedAt     string          `json:"updated_at"`
}

func writeProfile(w http.ResponseWriter, p history.Profile) {
	out := profileJSON{ParticipantID: p.ParticipantID, DisplayName: p.DisplayName, Metadata: p.Metadata, UpdatedAt: rfc3339(p.UpdatedAt)}
	if p.AvatarURL != "" {
		out.AvatarURL = &p.AvatarURL
	}
	if len(out.Metadata) == 0 {
		out.Metadata = json.RawMessage("{}")
	}
	writeJSON(w, http.StatusOK, out)
}

type profileBody struct {
	DisplayName *string         `json:"display_name"`
	AvatarURL   *string         `json:"avatar_url"`
	Metadata    json.RawMessage `json:"metadata"`
}

// decodeProfile decodes the body of PUT /v1/participants/{pid}; the service
// checks the values.
func decodeProfile(body []byte) (board.ProfileInput, error) {
	var pb profileBody
	if err := unmarshal(body, &pb); err != nil {
		return board.ProfileInput{}, err
	}
	if pb.DisplayName == nil {
		return board.ProfileInput{}, board.Invalid("display_name is required")
	}
	in := board.ProfileInput{DisplayName: *pb.DisplayName, Metadata: pb.Metadata}
	if pb.AvatarURL != nil {
		in.AvatarURL = *pb.AvatarURL
	}
	if !isNull(pb.Metadata) && pb.Metadata[0] != '{' {
		return board.ProfileInput{}, board.Invalid("metadata must be a JSON object")
	}
	return in, nil
}

func (a *API) putProfile(w http.ResponseWriter, r *http.Request) error {
	pid, err := pathID(r, "pid", "participant id")
	if err != nil {
		return err
	}
	body, err := readBody(w, r, a.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	in, err := decodeProfile(*body)
	if err == nil {
		in.Metadata = append(json.RawMessage(nil), in.Metadata...) // the body buffer is reused
	}
	putBuf(body)
	if err != nil {
		return err
	}
	p, err := a.svc.PutProfile(r.Context(), pid, in)
	if err != nil {
		return err
	}
	writeProfile(w, p)
	return nil
}

func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	pid, err := pathID(r, "pid", "participant id")
	if err != nil {
		return err
	}
	p, err := a.svc.Profile(r.Context(), pid)
	if err != nil {
		return err
	}
	writeProfile(w, p)
	return nil
}

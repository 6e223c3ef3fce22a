package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/wire"
)

func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ok"}`))
	return nil
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	if a.draining.Load() {
		return &board.Error{Code: board.CodeUnavailable, Message: "the server is shutting down", RetryAfter: time.Second}
	}
	if a.opts.Ready != nil {
		if err := a.opts.Ready(r.Context()); err != nil {
			return &board.Error{Code: board.CodeUnavailable, Message: "a backend is unreachable: " + err.Error(), RetryAfter: time.Second}
		}
	}
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ready"}`))
	return nil
}

// boardAndParticipant returns the {id} and {pid} path parameters, validated.
func boardAndParticipant(r *http.Request) (board, participant string, err error) {
	if board, err = pathID(r, "id", "leaderboard id"); err != nil {
		return "", "", err
	}
	participant, err = pathID(r, "pid", "participant id")
	return board, participant, err
}

// pathID returns the path parameter name, validated as an id.
func pathID(r *http.Request, name, field string) (string, error) {
	v := r.PathValue(name)
	if err := board.ValidateID(field, v); err != nil {
		return "", err
	}
	return v, nil
}

// queryInt parses an optional integer query parameter within [lo, hi].
func queryInt(q query, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, board.Invalid(name + " must be an integer from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi))
	}
	return v, nil
}

// leaderboardJSON is the leaderboard object of API.md.
type leaderboardJSON struct {
	LeaderboardID     string          `json:"leaderboard_id"`
	Name              string          `json:"name"`
	Type              string          `json:"type"`
	Status            board.Status    `json:"status"`
	SortOrder         string          `json:"sort_order"`
	UpdatePolicy      string          `json:"update_policy"`
	StartsAt          *string         `json:"starts_at"`
	EndsAt            *string         `json:"ends_at"`
	CreatedAt         string          `json:"created_at"`
	MaxScore          *uint64         `json:"max_score"`
	Config            json.RawMessage `json:"config"`
	Version           uint64          `json:"version"`
	Epoch             string          `json:"epoch"`
	TotalParticipants int64           `json:"total_participants"`
}

// timeFormat is RFC 3339 in UTC with milliseconds, the precision of the API's times.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeFormat)
	return &s
}

func toJSON(lb board.Leaderboard) leaderboardJSON {
	order, policy := "desc", "set"
	if lb.Order == store.Ascending {
		order = "asc"
	}
	if lb.Policy == store.PolicyBest {
		policy = "best"
	}
	return leaderboardJSON{
		LeaderboardID: lb.ID, Name: lb.Name, Type: lb.Type, Status: lb.Status,
		SortOrder: order, UpdatePolicy: policy,
		StartsAt: optTime(lb.StartsAt), EndsAt: optTime(lb.EndsAt), CreatedAt: lb.CreatedAt.UTC().Format(timeFormat),
		MaxScore: lb.MaxScore, Config: lb.Config,
		Version: lb.Version, Epoch: lb.Epoch, TotalParticipants: lb.Total,
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only our own types get here; this is a bug
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSONBytes(w, status, body)
}

func (a *API) createLeaderboard(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, a.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	req, err := decodeCreate(*body)
	putBuf(body)
	if err != nil {
		return err
	}
	lb, err := a.svc.Create(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toJSON(lb))
	return nil
}

var validStatus = map[string]bool{"scheduled": true, "active": true, "paused": true, "completed": true}

// listQuery is the query of GET /v1/leaderboards.
type listQuery struct {
	status        string
	limit, offset int
}

func parseListQuery(q query) (listQuery, error) {
	var lq listQuery
	lq.status = q.Get("status")
	if lq.status != "" && !validStatus[lq.status] {
		return lq, board.Invalid("status must be one of scheduled, active, paused, completed")
	}
	var err error
	if lq.limit, err = queryInt(q, "limit", 100, 1, 1000); err != nil {
		return lq, err
	}
	if lq.offset, err = queryInt(q, "offset", 0, 0, 1<<31-1); err != nil {
		return lq, err
	}
	return lq, nil
}

func (a *API) listLeaderboards(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(queryOf(r))
	if err != nil {
		return err
	}
	lbs, err := a.svc.List(r.Context(), board.Status(lq.status), lq.limit, lq.offset)
	if err != nil {
		return err
	}
	out := struct {
		Leaderboards []leaderboardJSON `json:"leaderboards"`
	}{Leaderboards: make([]leaderboardJSON, 0, len(lbs))}
	for _, lb := range lbs {
		out.Leaderboards = append(out.Leaderboards, toJSON(lb))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getLeaderboard(w http.ResponseWriter, r *http.Request) error {
	return a.leaderboardOp(w, r, a.svc.Get)
}

// leaderboardOp runs op on the leaderboard named in the path and answers with
// the leaderboard object.
func (a *API) leaderboardOp(w http.ResponseWriter, r *http.Request, op func(context.Context, string) (board.Leaderboard, error)) error {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		return err
	}
	lb, err := op(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(lb))
	return nil
}

func (a *API) patchLeaderboard(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, a.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	p, err := decodePatch(*body)
	putBuf(body)
	if err != nil {
		return err
	}
	return a.leaderboardOp(w, r, func(ctx context.Context, id string) (board.Leaderboard, error) {
		return a.svc.Update(ctx, id, p)
	})
}

func (a *API) finalize(w http.ResponseWriter, r *http.Request) error {
	return a.leaderboardOp(w, r, a.svc.Finalize)
}

func (a *API) removeParticipant(w http.ResponseWriter, r *http.Request) error {
	id, pid, err := boardAndParticipant(r)
	if err != nil {
		return err
	}
	if err := a.svc.RemoveParticipant(r.Context(), id, pid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) submit(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		return err
	}
	body, err := readBody(w, r, a.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer putBuf(body) // the response is encoded into the same buffer
	in, err := decodeScore(*body)
	if err == nil {
		var self string
		if self, err = a.submitter(w); err == nil {
			err = ownScore(self, in.ParticipantID)
		}
	}
	if err == nil {
		var res store.Result
		if res, err = a.svc.Submit(r.Context(), id, in); err == nil {
			a.metrics.countResult(&res)
			*body = appendResult((*body)[:0], id, in.ParticipantID, &res)
			writeJSONBytes(w, http.StatusOK, *body)
			return nil
		}
		if errors.Is(err, board.ErrQueued) {
			a.metrics.queued.Inc()
			*body = appendQueued((*body)[:0], id, in.ParticipantID, &res)
			writeJSONBytes(w, http.StatusAccepted, *body)
			return nil
		}
	}
	a.metrics.rejected.Inc()
	return err
}

func (a *API) submitBatch(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		return err
	}
	body, err := readBody(w, r, a.opts.MaxBatchBodyBytes)
	if err != nil {
		return err
	}
	defer putBuf(body) // the response is encoded into the same buffer
	ins, decodeErrs, err := decodeBatch(*body)
	if err != nil {
		return err
	}
	self, err := a.submitter(w)
	if err != nil {
		return err
	}
	if self != "" {
		// A participant's batch holds only its own scores, or none is applied.
		for i := range ins {
			if decodeErrs[i] == nil {
				if err := ownScore(self, ins[i].ParticipantID); err != nil {
					a.metrics.rejected.Add(float64(len(ins)))
					return err
				}
			}
		}
	}
	results, errs, err := a.svc.SubmitBatch(r.Context(), id, ins, decodeErrs)
	queued := errors.Is(err, board.ErrQueued)
	if err != nil && !queued {
		a.metrics.rejected.Add(float64(len(ins)))
		return err
	}
	b := append((*body)[:0], `{"results":[`...)
	for i := range results {
		if i > 0 {
			b = append(b, ',')
		}
		if errs[i] != nil {
			a.metrics.rejected.Inc()
			e, ok := errs[i].(*board.Error)
			if !ok {
				e = &board.Error{Code: board.CodeUnavailable, Message: errs[i].Error()}
			}
			b = wire.Error(b, e.Code, e.Message)
			continue
		}
		if queued {
			a.metrics.queued.Inc()
			b = appendQueued(b, id, ins[i].ParticipantID, &results[i])
			continue
		}
		a.metrics.countResult(&results[i])
		b = appendResult(b, id, ins[i].ParticipantID, &results[i])
	}
	b = append(b, "]}"...)
	*body = b // the grown buffer goes back to the pool
	status := http.StatusOK
	if queued {
		status = http.StatusAccepted
	}
	writeJSONBytes(w, status, b)
	return nil
}

// appendQueued is the answer for a submission queued while the ranking store
// is unreachable: accepted, applied in order when it returns; no rank yet.
func appendQueued(b []byte, board, participant string, r *store.Result) []byte {
	b = append(b, `{"leaderboard_id":`...)
	b = wire.ID(b, board)
	b = append(b, `,"participant_id":`...)
	b = wire.ID(b, participant)
	b = append(b, `,"score":`...)
	b = wire.Uint(b, r.Score)
	b = append(b, `,"achieved_at":`...)
	b = wire.Int(b, r.AchievedAt)
	return append(b, `,"queued":true}`...)
}

// etag names the state a read saw; versions compare only within an epoch,
// so the epoch is part of it. Appended on the stack: one allocation, the
// string, where a concatenation with FormatUint made two.
func etag(epoch string, version uint64) string {
	var buf [64]byte
	b := append(buf[:0], '"')
	b = append(b, epoch...)
	b = append(b, '.')
	b = strconv.AppendUint(b, version, 10)
	return string(append(b, '"'))
}

// notModified sets the ETag and answers 304 when the client already has it.
func notModified(w http.ResponseWriter, r *http.Request, tag string) bool {
	return notModifiedHeader(w, r, []string{tag})
}

// notModifiedHeader is notModified with the ETag header value already made
// (read-only: a cached body's, shared by its responses).
func notModifiedHeader(w http.ResponseWriter, r *http.Request, etag []string) bool {
	w.Header()["Etag"] = etag
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	tag := etag[0]
	for _, t := range splitTags(inm) {
		if t == tag || t == "*" || t == "W/"+tag {
			w.WriteHeader(http.StatusNotModified)
			return true
		}
	}
	return false
}

func splitTags(s string) []string {
	var out []string
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		s = s[i:]
		j := 0
		for j < len(s) && s[j] != ',' {
			j++
		}
		if t := trimSpace(s[:j]); t != "" {
			out = append(out, t)
		}
		s = s[j:]
	}
	return out
}

func trimSpace(s string) string {
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

// rankingsQuery is the query of GET .../rankings: a page (offset), or the
// window around a participant (around set).
type rankingsQuery struct {
	limit, offset int
	around        string
}

func parseRankingsQuery(q query) (rankingsQuery, error) {
	var rq rankingsQuery
	var err error
	if rq.limit, err = queryInt(q, "limit", 100, 1, 1000); err != nil {
		return rq, err
	}
	if q.Has("around") {
		if q.Has("offset") {
			return rq, board.Invalid("around and offset cannot be combined")
		}
		rq.around = q.Get("around")
		if err := board.ValidateID("around", rq.around); err != nil {
			return rankingsQuery{}, err
		}
		return rq, nil
	}
	rq.offset, err = queryInt(q, "offset", 0, 0, 1<<31-1)
	return rq, err
}

func (a *API) rankings(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		return err
	}
	rq, err := parseRankingsQuery(queryOf(r))
	if err != nil {
		return err
	}
	var page store.Page
	if rq.around != "" {
		page, err = a.svc.Around(r.Context(), id, rq.around, rq.limit)
	} else {
		if rq.offset == 0 && rq.limit <= topCacheMaxLimit {
			return a.topN(w, r, id, rq.limit)
		}
		page, err = a.svc.Rankings(r.Context(), id, rq.offset, rq.limit)
	}
	if err != nil {
		if a.opts.StaleReads && writeStale(w, err, a.stale.get(r)) {
			return nil
		}
		return err
	}
	a.writeVersioned(w, r, page.Version, func(b []byte, epoch string) []byte { return appendPage(b, id, epoch, &page) })
	return nil
}

// writeVersioned answers a read made at version: 304 when the client's
// If-None-Match names it, else the body that encode appends, with its ETag.
func (a *API) writeVersioned(w http.ResponseWriter, r *http.Request, version uint64, encode func(b []byte, epoch string) []byte) {
	epoch := a.svc.Epoch()
	if notModified(w, r, etag(epoch, version)) {
		return
	}
	b := getBuf()
	*b = encode((*b)[:0], epoch)
	if a.opts.StaleReads {
		a.stale.put(r, *b)
	}
	writeJSONBytes(w, http.StatusOK, *b)
	putBuf(b)
}

// topN serves the top of a leaderboard from the cache when the cached body is
// at the current version, and encodes and caches it otherwise.
func (a *API) topN(w http.ResponseWriter, r *http.Request, id string, limit int) error {
	version, err := a.svc.Version(r.Context(), id)
	if err != nil {
		// The ranking store is unreachable: the last state this server saw,
		// marked stale, beats an error page.
		if writeStale(w, err, a.top.latest(id, limit)) {
			return nil
		}
		return err
	}
	epoch := a.svc.Epoch()
	names := a.svc.NamesGeneration() // before the read: the page has these names or newer
	if e := a.top.get(id, limit, epoch, version, names); e != nil {
		if !notModifiedHeader(w, r, e.etag) {
			writeJSONLength(w, http.StatusOK, e.body, e.length)
		}
		return nil
	}
	if notModified(w, r, etag(epoch, version)) {
		return nil
	}
	page, err := a.svc.Rankings(r.Context(), id, 0, limit)
	if err != nil {
		return err
	}
	if page.Version != version {
		w.Header()["Etag"] = []string{etag(epoch, page.Version)}
	}
	body := appendPage(make([]byte, 0, 80*len(page.Entries)+160), id, epoch, &page)
	a.top.put(id, limit, epoch, page.Version, names, body)
	writeJSONBytes(w, http.StatusOK, body)
	return nil
}

func (a *API) participant(w http.ResponseWriter, r *http.Request) error {
	id, pid, err := boardAndParticipant(r)
	if err != nil {
		return err
	}
	neighbors, err := queryInt(queryOf(r), "neighbors", 2, 0, 100)
	if err != nil {
		return err
	}
	v, err := a.svc.Participant(r.Context(), id, pid, neighbors)
	if err != nil {
		if a.opts.StaleReads && writeStale(w, err, a.stale.get(r)) {
			return nil
		}
		return err
	}
	a.writeVersioned(w, r, v.Version, func(b []byte, epoch string) []byte { return appendParticipant(b, id, epoch, &v) })
	return nil
}

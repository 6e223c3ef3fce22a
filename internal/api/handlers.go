package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
)

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, board.CodeUnavailable, "the server is shutting down")
		return
	}
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ready"}`))
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
func queryInt(q url.Values, name string, def, lo, hi int) (int, error) {
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

func (a *API) createLeaderboard(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, a.opts.MaxBodyBytes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req, err := decodeCreate(*body)
	putBuf(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lb, err := a.svc.Create(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toJSON(lb))
}

var validStatus = map[string]bool{"scheduled": true, "active": true, "paused": true, "completed": true}

func (a *API) listLeaderboards(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && !validStatus[status] {
		a.fail(w, r, board.Invalid("status must be one of scheduled, active, paused, completed"))
		return
	}
	limit, err := queryInt(q, "limit", 100, 1, 1000)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	offset, err := queryInt(q, "offset", 0, 0, 1<<31-1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lbs, err := a.svc.List(r.Context(), board.Status(status), limit, offset)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := struct {
		Leaderboards []leaderboardJSON `json:"leaderboards"`
	}{Leaderboards: make([]leaderboardJSON, 0, len(lbs))}
	for _, lb := range lbs {
		out.Leaderboards = append(out.Leaderboards, toJSON(lb))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getLeaderboard(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lb, err := a.svc.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(lb))
}

func (a *API) patchLeaderboard(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, a.opts.MaxBodyBytes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := decodePatch(*body)
	putBuf(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lb, err := a.svc.Update(r.Context(), id, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(lb))
}

func (a *API) finalize(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lb, err := a.svc.Finalize(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(lb))
}

func (a *API) removeParticipant(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pid, err := pathID(r, "pid", "participant id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.svc.RemoveParticipant(r.Context(), id, pid); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) submit(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, a.opts.MaxBodyBytes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in, err := decodeScore(*body)
	if err != nil {
		putBuf(body)
		a.metrics.rejected.Inc()
		a.fail(w, r, err)
		return
	}
	res, err := a.svc.Submit(r.Context(), id, in)
	if err != nil {
		putBuf(body)
		a.metrics.rejected.Inc()
		a.fail(w, r, err)
		return
	}
	a.metrics.countResult(&res)
	*body = appendResult((*body)[:0], id, in.ParticipantID, &res)
	writeJSONBytes(w, http.StatusOK, *body)
	putBuf(body)
}

func (a *API) submitBatch(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, a.opts.MaxBatchBodyBytes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ins, decodeErrs, err := decodeBatch(*body)
	if err != nil {
		putBuf(body)
		a.fail(w, r, err)
		return
	}
	results, errs, err := a.svc.SubmitBatch(r.Context(), id, ins, decodeErrs)
	if err != nil {
		putBuf(body)
		a.metrics.rejected.Add(float64(len(ins)))
		a.fail(w, r, err)
		return
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
			b = appendError(b, e.Code, e.Message)
			continue
		}
		a.metrics.countResult(&results[i])
		b = appendResult(b, id, ins[i].ParticipantID, &results[i])
	}
	b = append(b, "]}"...)
	*body = b
	writeJSONBytes(w, http.StatusOK, b)
	putBuf(body)
}

// etag names the state a read saw; versions compare only within an epoch,
// so the epoch is part of it.
func etag(epoch string, version uint64) string {
	return `"` + epoch + "." + strconv.FormatUint(version, 10) + `"`
}

// notModified sets the ETag and answers 304 when the client already has it.
func notModified(w http.ResponseWriter, r *http.Request, tag string) bool {
	w.Header()["Etag"] = []string{tag}
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
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

func (a *API) rankings(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := queryInt(q, "limit", 100, 1, 1000)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var page store.Page
	if around := q.Get("around"); around != "" || q.Has("around") {
		if q.Has("offset") {
			a.fail(w, r, board.Invalid("around and offset cannot be combined"))
			return
		}
		if err := board.ValidateID("around", around); err != nil {
			a.fail(w, r, err)
			return
		}
		page, err = a.svc.Around(r.Context(), id, around, limit)
	} else {
		offset, oerr := queryInt(q, "offset", 0, 0, 1<<31-1)
		if oerr != nil {
			a.fail(w, r, oerr)
			return
		}
		if offset == 0 && limit <= topCacheMaxLimit {
			a.topN(w, r, id, limit)
			return
		}
		page, err = a.svc.Rankings(r.Context(), id, offset, limit)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	epoch := a.svc.Epoch()
	if notModified(w, r, etag(epoch, page.Version)) {
		return
	}
	b := getBuf()
	*b = appendPage((*b)[:0], id, epoch, &page)
	writeJSONBytes(w, http.StatusOK, *b)
	putBuf(b)
}

// topN serves the top of a leaderboard from the cache when the cached body is
// at the current version, and encodes and caches it otherwise.
func (a *API) topN(w http.ResponseWriter, r *http.Request, id string, limit int) {
	version, err := a.svc.Version(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	epoch := a.svc.Epoch()
	if notModified(w, r, etag(epoch, version)) {
		return
	}
	if body := a.top.get(id, limit, version); body != nil {
		writeJSONBytes(w, http.StatusOK, body)
		return
	}
	page, err := a.svc.Rankings(r.Context(), id, 0, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if page.Version != version {
		w.Header()["Etag"] = []string{etag(epoch, page.Version)}
	}
	body := appendPage(make([]byte, 0, 80*len(page.Entries)+160), id, epoch, &page)
	a.top.put(id, limit, page.Version, body)
	writeJSONBytes(w, http.StatusOK, body)
}

func (a *API) participant(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pid, err := pathID(r, "pid", "participant id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	neighbors, err := queryInt(r.URL.Query(), "neighbors", 2, 0, 100)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v, err := a.svc.Participant(r.Context(), id, pid, neighbors)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	epoch := a.svc.Epoch()
	if notModified(w, r, etag(epoch, v.Version)) {
		return
	}
	b := getBuf()
	*b = appendParticipant((*b)[:0], id, epoch, &v)
	writeJSONBytes(w, http.StatusOK, *b)
	putBuf(b)
}

package client_test

// A fake leaderboard server for the watcher's tests and examples. It holds a
// small ranking model (desc order, ties by achieved_at then id) with its full
// history, and speaks the live protocol of docs/LIVE.md over WebSocket, SSE
// and long poll, plus the one REST read the watcher uses (rankings). The
// tests drive it: change scores, drop connections, break a chain, resync,
// refuse a transport, forget history, restart with a new epoch.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbhq/leaderboard/client"
	"github.com/lxzan/gws"
)

// window names what a subscription watches.
type window struct {
	kind, pid     string
	limit, radius int
}

func windowFromQuery(r *http.Request) window {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	radius, _ := strconv.Atoi(q.Get("radius"))
	return window{kind: q.Get("kind"), pid: q.Get("participant_id"), limit: limit, radius: radius}
}

// request is one subscription request the fake saw (a WebSocket subscribe, an
// SSE connect, a long poll) and what it answered.
type request struct {
	transport string
	since     *uint64 // since_version or Last-Event-ID
	epoch     string
	answer    string // "snapshot", "update" or "none" (a long poll that timed out)
}

// refusal makes the fake refuse a transport with an error answer, or with
// status hangUp by closing the connection without any answer.
type refusal struct {
	status int
	code   string
}

const hangUp = -1

// liveSub is one open WebSocket subscription or SSE stream.
type liveSub struct {
	window
	id   string
	last uint64 // version of the last message sent
	ws   *gws.Conn
	sse  chan []byte   // SSE frames for the stream's handler
	kill chan struct{} // closed to cut an SSE stream
}

type fake struct {
	srv    *httptest.Server
	closed chan struct{}

	mu          sync.Mutex
	board       string
	epoch       string
	epochs      int
	version     uint64
	minRetained uint64 // history before this version is forgotten
	clock       int64
	scores      map[string]client.Entry
	history     map[uint64][]client.Entry
	subs        map[*liveSub]bool
	conns       map[*gws.Conn]bool
	changed     chan struct{} // closed and replaced on every change
	breakNext   bool
	refuse      map[string]refusal // by transport
	auth        map[string]string  // last Authorization header, by transport
	hits        map[string]int     // requests, by transport
	log         []request
	resyncs     int
}

func newFake(board string) *fake {
	f := &fake{
		closed: make(chan struct{}), board: board, epoch: "e1", epochs: 1,
		scores:  map[string]client.Entry{},
		history: map[uint64][]client.Entry{0: nil},
		subs:    map[*liveSub]bool{}, conns: map[*gws.Conn]bool{},
		changed: make(chan struct{}), refuse: map[string]refusal{}, auth: map[string]string{}, hits: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/leaderboards/{id}/subscribe", f.handleWS)
	mux.HandleFunc("GET /v1/leaderboards/{id}/stream", f.handleSSE)
	mux.HandleFunc("GET /v1/leaderboards/{id}/updates", f.handleLongPoll)
	mux.HandleFunc("GET /v1/leaderboards/{id}/rankings", f.handleRankings)
	f.srv = httptest.NewServer(mux)
	return f
}

func (f *fake) URL() string { return f.srv.URL }

func (f *fake) Close() {
	f.mu.Lock()
	select {
	case <-f.closed:
	default:
		close(f.closed)
	}
	for c := range f.conns {
		_ = c.NetConn().Close()
	}
	f.mu.Unlock()
	f.srv.Close()
}

// ---- the model ----

func (f *fake) sorted() []client.Entry {
	es := make([]client.Entry, 0, len(f.scores))
	for _, e := range f.scores {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b client.Entry) int {
		switch {
		case a.Score != b.Score:
			if a.Score > b.Score {
				return -1
			}
			return 1
		case a.AchievedAt != b.AchievedAt:
			return int(a.AchievedAt - b.AchievedAt)
		}
		return strings.Compare(a.ParticipantID, b.ParticipantID)
	})
	for i := range es {
		es[i].Rank = int64(i + 1)
	}
	return es
}

// Set gives pid a score (a change bumps the version and is pushed).
func (f *fake) Set(pid string, score uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(pid, score, true)
}

// setLocked changes a score; push=false keeps the change from live
// subscriptions (they learn it from their next message).
func (f *fake) setLocked(pid string, score uint64, push bool) {
	if e, ok := f.scores[pid]; ok && e.Score == score {
		return
	}
	f.clock++
	f.scores[pid] = client.Entry{ParticipantID: pid, Score: score, AchievedAt: 1_732_600_000_000 + f.clock}
	f.bumpLocked(push)
}

// Remove removes pid.
func (f *fake) Remove(pid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.scores, pid)
	f.bumpLocked(true)
}

func (f *fake) bumpLocked(push bool) {
	f.version++
	f.history[f.version] = f.sorted()
	if push {
		f.pushLocked()
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// Window returns the current window: its offset and entries, or the
// participant.
func (f *fake) Window(w window) (int64, []client.Entry, *client.LiveParticipant) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return cut(f.history[f.version], w)
}

// cut is the window w of a full ranking.
func cut(ranking []client.Entry, w window) (offset int64, entries []client.Entry, p *client.LiveParticipant) {
	find := func() int {
		return slices.IndexFunc(ranking, func(e client.Entry) bool { return e.ParticipantID == w.pid })
	}
	switch w.kind {
	case "top":
		return 0, ranking[:min(w.limit, len(ranking))], nil
	case "participant":
		if i := find(); i >= 0 {
			e := ranking[i]
			return 0, nil, &client.LiveParticipant{Rank: e.Rank, ParticipantID: e.ParticipantID, Score: e.Score, AchievedAt: e.AchievedAt}
		}
		return 0, nil, nil
	default: // around
		i := find()
		if i < 0 {
			return 0, nil, nil
		}
		lo, hi := max(0, i-w.radius), min(len(ranking), i+w.radius+1)
		return int64(lo), ranking[lo:hi], nil
	}
}

// ---- messages ----

type msg map[string]any

func (f *fake) snapshotLocked(w window, id string) msg {
	off, es, p := cut(f.history[f.version], w)
	m := msg{"type": "snapshot", "id": id, "version": f.version}
	if w.kind == "participant" {
		m["participant"] = p
	} else {
		m["offset"], m["size"], m["entries"] = off, len(es), nonNil(es)
	}
	return m
}

// updateLocked is the update from version from to now; changed is false when
// the window is the same.
func (f *fake) updateLocked(w window, id string, from uint64) (m msg, changed bool) {
	oOff, oEs, oP := cut(f.history[from], w)
	nOff, nEs, nP := cut(f.history[f.version], w)
	m = msg{"type": "update", "id": id, "prev_version": from, "version": f.version}
	if w.kind == "participant" {
		if nP != nil && oP != nil {
			nP.PreviousRank, nP.PreviousScore = &oP.Rank, &oP.Score
		}
		m["participant"] = nP
		same := (oP == nil) == (nP == nil) && (oP == nil || oP.Rank == nP.Rank && oP.Score == nP.Score && oP.AchievedAt == nP.AchievedAt)
		return m, !same
	}
	old := map[int64]client.Entry{}
	for _, e := range oEs {
		old[e.Rank] = e
	}
	changes := []client.Entry{}
	for _, e := range nEs {
		if o, ok := old[e.Rank]; !ok || o != e {
			changes = append(changes, e)
		}
	}
	m["offset"], m["size"], m["changes"] = nOff, len(nEs), changes
	return m, len(changes) > 0 || oOff != nOff || len(oEs) != len(nEs)
}

func nonNil(es []client.Entry) []client.Entry {
	if es == nil {
		return []client.Entry{}
	}
	return es
}

// servableLocked: can since (of epoch) be answered with an update?
func (f *fake) servableLocked(since *uint64, epoch string) bool {
	return since != nil && epoch == f.epoch && *since >= f.minRetained && *since <= f.version
}

// answerLocked answers a (re)subscription: an update from since when
// servable, else a snapshot.
func (f *fake) answerLocked(transport string, w window, id string, since *uint64, epoch string) msg {
	var m msg
	if f.servableLocked(since, epoch) {
		m, _ = f.updateLocked(w, id, *since)
	} else {
		m = f.snapshotLocked(w, id)
	}
	f.log = append(f.log, request{transport: transport, since: since, epoch: epoch, answer: m["type"].(string)})
	return m
}

func (f *fake) sendLocked(s *liveSub, m msg) {
	b, _ := json.Marshal(m)
	if s.ws != nil {
		_ = s.ws.WriteMessage(gws.OpcodeText, b)
		return
	}
	frame := fmt.Sprintf("event: %s\nid: %d\ndata: %s\n\n", m["type"], f.version, b)
	select {
	case s.sse <- []byte(frame):
	default: // a stream that stopped reading; it is being torn down
	}
}

// pushLocked sends every live subscription its update, if its window changed.
func (f *fake) pushLocked() {
	for s := range f.subs {
		m, changed := f.updateLocked(s.window, s.id, s.last)
		if !changed {
			continue
		}
		if f.breakNext {
			m["prev_version"] = s.last + 1000
		}
		s.last = f.version
		f.sendLocked(s, m)
	}
	f.breakNext = false
}

// ---- test controls ----

// Drop cuts every live connection, then runs change (which may be nil)
// before anyone can reconnect.
func (f *fake) Drop(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.NetConn().Close()
		delete(f.conns, c)
	}
	for s := range f.subs {
		if s.kill != nil {
			close(s.kill)
		}
		delete(f.subs, s)
	}
	if change != nil {
		change()
	}
}

// BreakChain makes the next pushed update carry a wrong prev_version.
func (f *fake) BreakChain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.breakNext = true
}

// Resync tells every WebSocket subscription it was resynced, runs change
// (whose updates are not pushed: the backlog is dropped), and sends a fresh
// snapshot, as the server does for a slow reader.
func (f *fake) Resync(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		if s.ws != nil {
			f.sendLocked(s, msg{"type": "resync", "id": s.id, "reason": "slow_consumer"})
		}
	}
	if change != nil {
		change()
	}
	for s := range f.subs {
		if s.ws == nil {
			continue
		}
		f.sendLocked(s, f.snapshotLocked(s.window, s.id))
		s.last = f.version
		f.resyncs++
	}
}

// ForgetHistory drops the retained history: resumes get snapshots.
func (f *fake) ForgetHistory() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.minRetained = f.version
}

// restartLocked starts a new epoch with the same scores at version 0.
func (f *fake) restartLocked() {
	f.epochs++
	f.epoch = "e" + strconv.Itoa(f.epochs)
	f.version, f.minRetained = 0, 0
	f.history = map[uint64][]client.Entry{0: f.sorted()}
}

// Refuse makes transport answer its requests with status and code (status 0
// accepts again).
func (f *fake) Refuse(transport string, status int, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.refuse, transport)
	} else {
		f.refuse[transport] = refusal{status, code}
	}
}

// Requests returns the subscription requests seen so far.
func (f *fake) Requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// Hits returns how many requests a transport received, refused ones
// included.
func (f *fake) Hits(transport string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[transport]
}

// Auth returns the last Authorization header a transport ("websocket",
// "sse", "longpoll", "rest") received.
func (f *fake) Auth(transport string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auth[transport]
}

// ---- HTTP ----

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"fake says %s"}}`, code, code)
}

// admit answers refusals and unknown leaderboards; false means answered.
func (f *fake) admit(w http.ResponseWriter, r *http.Request, transport string) bool {
	f.mu.Lock()
	f.auth[transport] = r.Header.Get("Authorization")
	f.hits[transport]++
	ref, refused := f.refuse[transport]
	known := r.PathValue("id") == f.board
	f.mu.Unlock()
	switch {
	case refused && ref.status == hangUp:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return false
	case refused:
		writeError(w, ref.status, ref.code)
		return false
	case !known && transport != "websocket": // over WebSocket: an error message
		writeError(w, http.StatusNotFound, "leaderboard_not_found")
		return false
	}
	return true
}

func (f *fake) handleRankings(w http.ResponseWriter, r *http.Request) {
	if !f.admit(w, r, "rest") {
		return
	}
	f.mu.Lock()
	ranking := f.history[f.version]
	body, _ := json.Marshal(map[string]any{
		"leaderboard_id": f.board, "version": f.version, "epoch": f.epoch,
		"total_participants": len(ranking), "entries": nonNil(ranking[:min(1, len(ranking))]),
	})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (f *fake) handleWS(w http.ResponseWriter, r *http.Request) {
	if !f.admit(w, r, "websocket") {
		return
	}
	h := &fakeConn{f: f, known: r.PathValue("id") == f.board, subs: map[string]*liveSub{}}
	conn, err := gws.NewUpgrader(h, &gws.ServerOption{}).Upgrade(w, r)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.conns[conn] = true
	f.mu.Unlock()
	go conn.ReadLoop()
}

// fakeConn is the server side of one WebSocket connection.
type fakeConn struct {
	gws.BuiltinEventHandler
	f     *fake
	known bool
	subs  map[string]*liveSub // by id; guarded by f.mu
}

func (h *fakeConn) OnClose(c *gws.Conn, err error) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	for _, s := range h.subs {
		delete(h.f.subs, s)
	}
	delete(h.f.conns, c)
}

func (h *fakeConn) OnMessage(c *gws.Conn, message *gws.Message) {
	defer message.Close()
	var in struct {
		Type, ID, Kind, Epoch string
		ParticipantID         string `json:"participant_id"`
		Limit, Radius         int
		SinceVersion          *uint64 `json:"since_version"`
	}
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(m msg) { b, _ := json.Marshal(m); _ = c.WriteMessage(gws.OpcodeText, b) }
	if err := json.Unmarshal(message.Bytes(), &in); err != nil {
		reply(msg{"type": "error", "code": "invalid_argument", "message": "malformed JSON"})
		return
	}
	switch in.Type {
	case "ping":
		reply(msg{"type": "pong"})
	case "subscribe":
		if !h.known {
			reply(msg{"type": "error", "id": in.ID, "code": "leaderboard_not_found", "message": "no such leaderboard"})
			return
		}
		if old := h.subs[in.ID]; old != nil {
			delete(f.subs, old)
		}
		s := &liveSub{window: window{kind: in.Kind, pid: in.ParticipantID, limit: in.Limit, radius: in.Radius}, id: in.ID, ws: c}
		reply(msg{"type": "subscribed", "id": in.ID, "kind": in.Kind, "version": f.version, "epoch": f.epoch})
		f.sendLocked(s, f.answerLocked("websocket", s.window, s.id, in.SinceVersion, in.Epoch))
		s.last = f.version
		h.subs[in.ID], f.subs[s] = s, true
	}
}

func (f *fake) handleSSE(w http.ResponseWriter, r *http.Request) {
	if !f.admit(w, r, "sse") {
		return
	}
	var since *uint64
	if v, err := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64); err == nil {
		since = &v
	}
	s := &liveSub{window: windowFromQuery(r), id: "stream", sse: make(chan []byte, 256), kill: make(chan struct{})}
	f.mu.Lock()
	f.sendLocked(s, f.answerLocked("sse", s.window, s.id, since, r.URL.Query().Get("epoch")))
	s.last = f.version
	f.subs[s] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	for {
		select {
		case b := <-s.sse:
			_, _ = w.Write(b)
			fl.Flush()
		case <-s.kill:
			return
		case <-r.Context().Done():
			return
		case <-f.closed:
			return
		}
	}
}

func (f *fake) handleLongPoll(w http.ResponseWriter, r *http.Request) {
	if !f.admit(w, r, "longpoll") {
		return
	}
	q := r.URL.Query()
	win, epoch := windowFromQuery(r), q.Get("epoch")
	var since *uint64
	if v, err := strconv.ParseUint(q.Get("since_version"), 10, 64); err == nil {
		since = &v
	}
	timeoutMS, _ := strconv.Atoi(q.Get("timeout_ms"))
	timer := time.NewTimer(time.Duration(timeoutMS) * time.Millisecond)
	defer timer.Stop()
	respond := func(m msg) {
		b, _ := json.Marshal(m)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
	for {
		f.mu.Lock()
		if !f.servableLocked(since, epoch) {
			m := f.answerLocked("longpoll", win, "stream", since, epoch)
			f.mu.Unlock()
			respond(m)
			return
		}
		if m, changed := f.updateLocked(win, "stream", *since); changed {
			f.log = append(f.log, request{transport: "longpoll", since: since, epoch: epoch, answer: "update"})
			f.mu.Unlock()
			respond(m)
			return
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			f.mu.Lock()
			f.log = append(f.log, request{transport: "longpoll", since: since, epoch: epoch, answer: "none"})
			f.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		case <-f.closed:
			return
		}
	}
}

package gateway

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/fanout"
)

// streamID names the one subscription of an SSE stream or a long poll in the
// frames' "id" field.
const streamID = "stream"

// chanSink is the Sink of one SSE stream or long poll: a bounded channel the
// request's own goroutine drains.
type chanSink struct {
	ch      chan fanout.Frame
	dropped chan struct{}
}

func newChanSink(n int) *chanSink {
	return &chanSink{ch: make(chan fanout.Frame, n), dropped: make(chan struct{}, 1)}
}

func (s *chanSink) Send(f fanout.Frame) bool {
	select {
	case s.ch <- f:
		return true
	default:
		return false
	}
}

func (s *chanSink) onDrop(*fanout.Subscription) {
	select {
	case s.dropped <- struct{}{}:
	default:
	}
}

// specFromQuery reads kind, limit, participant_id and radius.
func specFromQuery(q url.Values) (fanout.Spec, error) {
	intParam := func(name string) (*int, error) {
		s := q.Get(name)
		if s == "" {
			return nil, nil
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return nil, board.Invalid(name + " must be an integer")
		}
		return &v, nil
	}
	limit, err := intParam("limit")
	if err != nil {
		return fanout.Spec{}, err
	}
	radius, err := intParam("radius")
	if err != nil {
		return fanout.Spec{}, err
	}
	kind := q.Get("kind")
	if kind == "" {
		kind = "top"
	}
	return specOf(kind, limit, q.Get("participant_id"), radius)
}

func parseVersion(name, s string) (*uint64, error) {
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, board.Invalid(name + " must be a version number")
	}
	return &v, nil
}

// ServeSSE streams GET /v1/leaderboards/{id}/stream as Server-Sent Events.
func (g *Gateway) ServeSSE(w http.ResponseWriter, r *http.Request, boardID string) error {
	if g.closing.Load() {
		return &board.Error{Code: board.CodeUnavailable, Message: "the server is shutting down", RetryAfter: time.Second}
	}
	q := r.URL.Query()
	spec, err := specFromQuery(q)
	if err != nil {
		return err
	}
	since, err := parseVersion("Last-Event-ID", r.Header.Get("Last-Event-ID"))
	if err != nil {
		return err
	}
	if since == nil {
		if since, err = parseVersion("since_version", q.Get("since_version")); err != nil {
			return err
		}
	}
	if err := g.boardExists(r.Context(), boardID); err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		// A HEAD has no body: answer the stream's headers and end. Holding
		// the stream open would count a stream nobody reads and leave the
		// client's keep-alive connection stuck behind it.
		sseHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if err := g.acquire(); err != nil {
		return err
	}
	defer g.live.Add(-1)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	sink := newChanSink(g.opts.SendQueue)
	sub, err := g.hub.Subscribe(r.Context(), boardID, streamID, spec, since, q.Get("epoch"), sink, sink.onDrop)
	if err != nil {
		return subscribeError(err, boardID)
	}
	defer func() {
		if sub != nil {
			g.hub.Unsubscribe(sub)
		}
	}()
	g.stats.sseActive.Add(1)
	defer g.stats.sseActive.Add(-1)

	sseHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 4096)
	ping := time.NewTicker(g.opts.PingInterval)
	defer ping.Stop()
	writeFrame := func(f fanout.Frame) {
		if f.Type == "subscribed" {
			return // SSE carries snapshot, update and status events only
		}
		bw.WriteString("event: ")
		bw.WriteString(f.Type)
		if f.Type == "snapshot" || f.Type == "update" {
			// Only window versions: Last-Event-ID must name a state the window had.
			bw.WriteString("\nid: ")
			bw.WriteString(strconv.FormatUint(f.Version, 10))
		}
		bw.WriteString("\ndata: ")
		bw.Write(f.Prefix)
		bw.Write(f.Body)
		bw.WriteString("\n\n")
	}
	var queued []fanout.Frame
	var runs []mergeRun
	flush := func() bool {
		if bw.Flush() != nil {
			return false
		}
		return rc.Flush() == nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-g.closed:
			return nil
		case f := <-sink.ch:
			// What is already queued goes out in one write; a stream that
			// fell behind gets its waiting updates merged into one, as a
			// WebSocket connection does (see wsConn.conflate).
			queued = append(queued[:0], f)
			for drained := false; !drained; {
				select {
				case f := <-sink.ch:
					queued = append(queued, f)
				default:
					drained = true
				}
			}
			if len(queued) > 1 && g.merger != nil {
				runs = findRuns(queued, runs[:0])
				if askMerges(g.merger, runs) > 0 {
					queued = replaceMerged(queued, len(queued), runs, &g.stats.sseMerges)
				}
				clear(runs)
			}
			for _, f := range queued {
				writeFrame(f)
			}
			clear(queued)
			if !flush() {
				return nil
			}
		case <-sink.dropped:
			// Send what was queued before the drop, then resync and start over.
			for drained := false; !drained; {
				select {
				case f := <-sink.ch:
					writeFrame(f)
				default:
					drained = true
				}
			}
			g.stats.resyncs.Add(1)
			writeFrame(fanout.ResyncFrame(streamID, "slow_consumer"))
			if !flush() {
				return nil
			}
			g.hub.Unsubscribe(sub)
			if sub, err = g.hub.Subscribe(r.Context(), boardID, streamID, spec, nil, "", sink, sink.onDrop); err != nil {
				return nil // the stream has started: end it, the client reconnects
			}
		case <-ping.C:
			bw.WriteString(": ping\n\n")
			if !flush() {
				return nil
			}
		}
	}
}

// sseHeaders are the headers of an SSE stream.
func sseHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell proxies not to buffer the stream
}

// pollTimeout reads a long poll's timeout_ms: 1 to 60000, default 25 s.
func pollTimeout(q url.Values) (time.Duration, error) {
	s := q.Get("timeout_ms")
	if s == "" {
		return 25 * time.Second, nil
	}
	ms, err := strconv.Atoi(s)
	if err != nil || ms < 1 || ms > 60000 {
		return 0, board.Invalid("timeout_ms must be an integer from 1 to 60000")
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// ServeLongPoll answers GET /v1/leaderboards/{id}/updates: one update (or a
// snapshot) as soon as the window differs from since_version, or 204 after
// timeout_ms.
func (g *Gateway) ServeLongPoll(w http.ResponseWriter, r *http.Request, boardID string) error {
	q := r.URL.Query()
	spec, err := specFromQuery(q)
	if err != nil {
		return err
	}
	since, err := parseVersion("since_version", q.Get("since_version"))
	if err != nil {
		return err
	}
	timeout, err := pollTimeout(q)
	if err != nil {
		return err
	}
	if g.closing.Load() {
		return &board.Error{Code: board.CodeUnavailable, Message: "the server is shutting down", RetryAfter: time.Second}
	}
	if err := g.boardExists(r.Context(), boardID); err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		// A HEAD has no body to wait for: answer at once (as for a poll
		// with nothing new) instead of holding a place for the timeout.
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := g.acquire(); err != nil {
		return err
	}
	defer g.live.Add(-1)
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + 10*time.Second))
	sink := newChanSink(4)
	sub, err := g.hub.Subscribe(r.Context(), boardID, streamID, spec, since, q.Get("epoch"), sink, sink.onDrop)
	if err != nil {
		return subscribeError(err, boardID)
	}
	defer func() {
		if sub != nil {
			g.hub.Unsubscribe(sub)
		}
	}()
	g.stats.pollActive.Add(1)
	defer g.stats.pollActive.Add(-1)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	unchanged := false // the catch-up said the window is as it was at since
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-g.closed:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusNoContent) // nothing changed here; ask again elsewhere
			return nil
		case <-timer.C:
			w.WriteHeader(http.StatusNoContent)
			return nil
		case <-sink.dropped:
			// Four frames queued unread cannot happen here; answer with a fresh state.
			g.hub.Unsubscribe(sub)
			if sub, err = g.hub.Subscribe(r.Context(), boardID, streamID, spec, nil, "", sink, sink.onDrop); err != nil {
				return err
			}
		case f := <-sink.ch:
			switch {
			case f.Type == "subscribed", f.Type == "status":
				continue
			case f.Type == "update" && since != nil && f.Version == *since:
				continue // the catch-up of a client that is current: wait for a change
			case f.Type == "update" && since != nil && f.PrevVersion == *since && f.Unchanged:
				unchanged = true // changes since, none in the window: wait for one
				continue
			case f.Type == "update" && unchanged && f.PrevVersion != *since:
				// The window changed: the client needs an update from its
				// own version, which a resume from it gives.
				unchanged = false
				g.hub.Unsubscribe(sub)
				for drained := false; !drained; { // the old subscription's frames
					select {
					case <-sink.ch:
					default:
						drained = true
					}
				}
				if sub, err = g.hub.Subscribe(r.Context(), boardID, streamID, spec, since, q.Get("epoch"), sink, sink.onDrop); err != nil {
					return err
				}
				continue
			}
			body := f.AppendJSON(make([]byte, 0, f.Len()))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body)
			return nil
		}
	}
}

// subscribeError maps a failed hub subscription to the API's errors.
func subscribeError(err error, boardID string) error {
	if errors.Is(err, fanout.ErrNotFound) {
		return &board.Error{Code: board.CodeLeaderboardNotFound, Message: "leaderboard \"" + boardID + "\" does not exist"}
	}
	return &board.Error{Code: board.CodeUnavailable, Message: err.Error(), RetryAfter: time.Second}
}

package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// streamClient is the configured HTTP client without its Timeout, which would
// cut streams and long polls.
func (cfg *config) streamClient() *http.Client {
	hc := *cfg.http
	hc.Timeout = 0
	return &hc
}

// liveRequest builds a GET on a live route of the watched leaderboard.
func (w *Watcher) liveRequest(ctx context.Context, route, query string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.c.path("v1", "leaderboards", w.board, route)+"?"+query, nil)
	if err != nil {
		return nil, err
	}
	w.c.authorize(req.Header, &w.cfg)
	req.Header.Set("Cache-Control", "no-cache")
	return req, nil
}

// refusal reads an error answer on a live route: fatal, or the transport is
// refused.
func refusal(resp *http.Response) sessionResult {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := parseAPIError(resp.StatusCode, resp.Header, body)
	if fatalHTTP(e) {
		return sessionResult{fatal: e}
	}
	if r, ok := rateLimited(e); ok {
		return r
	}
	return sessionResult{refused: true, err: e}
}

// fetchEpoch reads the leaderboard's current epoch over REST, for the SSE
// and long-poll transports, whose snapshots do not name their epoch (see
// session.epoch). A fatal answer ends the watcher.
func (w *Watcher) fetchEpoch(ctx context.Context) (string, *sessionResult) {
	// Bounded like the stream it precedes: a read that never ends (a server
	// that accepts and says nothing, a proxy that holds the request) left
	// the watcher waiting forever, never reconnecting.
	ctx, cancel := context.WithTimeout(ctx, w.cfg.readTimeout)
	defer cancel()
	var p RankingPage
	u := w.c.path("v1", "leaderboards", w.board, "rankings") + "?limit=1"
	if err := w.c.doCfg(ctx, &w.cfg, http.MethodGet, u, nil, &p); err != nil {
		var e *APIError
		if errors.As(err, &e) && fatalHTTP(e) {
			return "", &sessionResult{fatal: e}
		}
		if errors.As(err, &e) {
			if r, ok := rateLimited(e); ok {
				return "", &r
			}
		}
		return "", &sessionResult{err: err}
	}
	return p.Epoch, nil
}

// runSSE runs one Server-Sent Events stream until it ends.
func (w *Watcher) runSSE(ctx context.Context) sessionResult {
	epoch, bad := w.fetchEpoch(ctx)
	if bad != nil {
		return *bad
	}
	q := w.sub.query()
	since, resumeEpoch, resume := w.resumePoint()
	if resume {
		q.Set("epoch", resumeEpoch)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := w.liveRequest(ctx, "stream", q.Encode())
	if err != nil {
		return sessionResult{fatal: err}
	}
	req.Header.Set("Accept", "text/event-stream")
	if resume {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(since, 10))
	}
	watchdog := time.AfterFunc(w.cfg.readTimeout, cancel)
	defer watchdog.Stop()
	resp, err := w.cfg.streamClient().Do(req)
	if err != nil {
		return sessionResult{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return refusal(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return sessionResult{refused: true, err: errors.New("leaderboard: stream answered with " + resp.Header.Get("Content-Type"))}
	}
	start := time.Now()
	w.setTransport(TransportSSE)
	res := sessionResult{connected: true}
	// Every return below goes through done, which marks a stream that lived
	// long enough as stable (a deferred change to res would be lost: the
	// result is copied before deferred calls run).
	done := func() sessionResult {
		res.stable = time.Since(start) >= w.cfg.stableAfter()
		return res
	}

	s := session{epoch: epoch}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var event string
	var data []byte
	hasData := false
	for {
		line, err := readLine(br)
		if err != nil {
			res.err = err
			return done()
		}
		watchdog.Reset(w.cfg.readTimeout)
		if len(line) == 0 { // blank line: dispatch the event
			if hasData {
				var m liveMsg
				if json.Unmarshal(data, &m) == nil {
					if m.Type == "" {
						m.Type = event
					}
					switch act, err := w.apply(&s, &m); act {
					case actResubscribe: // reconnect without Last-Event-ID
						res.err = errors.New("leaderboard: broken update chain")
						return done()
					case actFatal:
						res.fatal = err
						return done()
					case actReconnect:
						res.err = err
						return done()
					}
				}
			}
			event, data, hasData = "", data[:0], false
			continue
		}
		if line[0] == ':' { // comment (keep-alive)
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
			if len(data) > 16<<20 {
				res.err = errors.New("leaderboard: SSE event too large")
				return done()
			}
		}
	}
}

// readLine reads one line of an event stream, without its end (LF or CRLF).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			if len(line) > 16<<20 {
				return nil, errors.New("leaderboard: SSE line too long")
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		return line, nil
	}
}

// runLongPoll polls until a poll fails or ctx ends.
func (w *Watcher) runLongPoll(ctx context.Context) sessionResult {
	start := time.Now()
	res := w.longPolls(ctx)
	// Like a stream, a run of polls resets the backoff once it lasted: it
	// did on its first answer, so a server that answered every other poll
	// and failed the next was polled again within the first backoff step,
	// forever.
	res.stable = res.connected && time.Since(start) >= w.cfg.stableAfter()
	return res
}

func (w *Watcher) longPolls(ctx context.Context) sessionResult {
	var res sessionResult
	hc := w.cfg.streamClient()
	// timeout is the poll's timeout as sent in timeout_ms; idle counts the
	// polls in a row answered before it with nothing new.
	timeout := time.Duration(w.cfg.pollTimeout.Milliseconds()) * time.Millisecond
	idle := 0
	for {
		if idle > 0 {
			// The server answers 204 only after timeout_ms, and 200 when
			// the window moved. A server or proxy that answers at once with
			// nothing new (204, the same snapshot again, an unknown message)
			// made this loop send thousands of polls a second: back off as
			// after a failed attempt, until a poll brings something.
			t := time.NewTimer(backoffDelay(idle-1, w.cfg.backoffBase, w.cfg.backoffMax))
			select {
			case <-ctx.Done():
				t.Stop()
				res.err = ctx.Err()
				return res
			case <-t.C:
			}
		}
		before := w.progressMark()
		s := session{}
		if w.needsEpoch() {
			epoch, bad := w.fetchEpoch(ctx)
			if bad != nil {
				res.fatal, res.err = bad.fatal, bad.err
				res.limited, res.retryAfter = bad.limited, bad.retryAfter
				return res
			}
			s.epoch = epoch
		}
		q := w.sub.query()
		if since, epoch, ok := w.resumePoint(); ok {
			q.Set("since_version", strconv.FormatUint(since, 10))
			q.Set("epoch", epoch)
		}
		q.Set("timeout_ms", strconv.FormatInt(w.cfg.pollTimeout.Milliseconds(), 10))
		pctx, cancel := context.WithTimeout(ctx, w.cfg.pollTimeout+w.cfg.readTimeout)
		start := time.Now()
		m, err := w.poll(pctx, hc, q.Encode(), &res)
		cancel()
		if err != nil {
			res.err = err
			return res
		}
		if m != nil {
			switch act, err := w.apply(&s, m); act {
			case actFatal:
				res.fatal = err
				return res
			case actReconnect:
				res.err = err
				return res
			}
			// actResubscribe: the chain broke and the state is marked
			// fresh, so the next poll goes without since_version and gets
			// a snapshot.
		}
		switch {
		case w.progressed(before), m == nil && time.Since(start) >= timeout: // news, or a 204 that waited its timeout
			idle = 0
		default:
			idle++
		}
	}
}

// progress is what tells a poll that brought something new from one that
// did not.
type progress struct {
	ready   bool
	version uint64
	epoch   string
}

func (w *Watcher) progressMark() progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	return progress{w.st.ready, w.st.version, w.st.epoch}
}

// progressed reports whether the state moved on since mark: a first
// snapshot, a new epoch or a later version (not the same window again, nor
// a version going back and forth).
func (w *Watcher) progressed(mark progress) bool {
	now := w.progressMark()
	return now.ready && (!mark.ready || now.epoch != mark.epoch || now.version > mark.version)
}

// poll sends one long poll and returns its message (nil for 204). An error
// answer sets res.fatal or res.refused (when the route never answered before)
// and is returned.
func (w *Watcher) poll(ctx context.Context, hc *http.Client, query string, res *sessionResult) (*liveMsg, error) {
	req, err := w.liveRequest(ctx, "updates", query)
	if err != nil {
		res.fatal = err
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, err
		}
		var m liveMsg
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		w.pollAnswered(res)
		return &m, nil
	case http.StatusNoContent:
		w.pollAnswered(res)
		return nil, nil
	}
	r := refusal(resp)
	if r.fatal != nil {
		res.fatal = r.fatal
		return nil, r.fatal
	}
	if r.limited {
		res.limited, res.retryAfter = true, r.retryAfter
		return nil, r.err
	}
	// A route that answered before and now refuses (503 while the server
	// drains, say) is a passing error: back off and poll again.
	res.refused = !res.connected
	return nil, r.err
}

func (w *Watcher) pollAnswered(res *sessionResult) {
	if !res.connected {
		res.connected = true
		w.setTransport(TransportLongPoll)
	}
}

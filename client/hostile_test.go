package client_test

// Watchers and REST calls facing servers that misbehave: absurd headers,
// answers that never come or come back at once forever, endless handshakes.
// The client must neither crash, hang, spin nor grow without bound.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
)

// A Retry-After beyond what a Duration holds saturates: it used to wrap
// around, 10000000000 s into a negative RetryAfter.
func TestRetryAfterBeyondADurationSaturates(t *testing.T) {
	for _, v := range []string{"10000000000", "99999999999999999999999"} {
		c, _ := restServer(t, 429, http.Header{"Retry-After": {v}}, `{"error":{"code":"rate_limited","message":"slow down"}}`)
		_, err := c.SubmitScore(context.Background(), "x", client.Score{ParticipantID: "p", Score: 1})
		var ae *client.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("Retry-After %s: error %v", v, err)
		}
		if ae.RetryAfter < 100*365*24*time.Hour {
			t.Errorf("Retry-After %s: RetryAfter %v, want the longest wait a Duration holds", v, ae.RetryAfter)
		}
	}
}

// A 429 on the upgrade whose Retry-After is absurd (past a Duration, or a
// date centuries ahead) is a long wait, not none: the Retry-After plus the
// backoff overflowed into a negative timer and the watcher upgraded again at
// once, thousands of times a second.
func TestWatcherAbsurdRetryAfterDoesNotHammer(t *testing.T) {
	for _, v := range []string{"10000000000", "Wed, 21 Oct 2415 07:28:00 GMT"} {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Retry-After", v)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"code":"rate_limited","message":"slow down"}}`)
		}))
		c := client.New(srv.URL, client.WithBackoff(time.Millisecond, 5*time.Millisecond))
		w := c.WatchTop(context.Background(), "b", 5, client.WithTransport(client.TransportWebSocket))
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		_ = w.Close()
		if d := time.Since(start); d > time.Second {
			t.Errorf("Retry-After %s: Close took %v", v, d)
		}
		srv.Close()
		if n := hits.Load(); n > 2 {
			t.Errorf("Retry-After %s: %d upgrades in 500 ms, want 1", v, n)
		}
	}
}

// hostilePoller serves the rankings read and answers every long poll after
// the first (a snapshot) with answer, at once, counting the polls.
func hostilePoller(t *testing.T, answer func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	polls := &atomic.Int64{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/leaderboards/b/rankings", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"leaderboard_id":"b","version":1,"epoch":"e1","total_participants":0,"entries":[]}`)
	})
	mux.HandleFunc("GET /v1/leaderboards/b/updates", func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"type":"snapshot","id":"stream","version":1,"epoch":"e1","offset":0,"size":0,"entries":[]}`)
			return
		}
		answer(w)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, polls
}

// pollsInASecond runs a long-polling top-5 watcher against url (backoff from
// 1 ms up to backoffMax) until it is ready, then returns how many polls the
// server counted in the second after.
func pollsInASecond(t *testing.T, url string, polls *atomic.Int64, backoffMax time.Duration, opts ...client.Option) int64 {
	t.Helper()
	c := client.New(url, append([]client.Option{client.WithBackoff(time.Millisecond, backoffMax)}, opts...)...)
	w := c.WatchTop(context.Background(), "b", 5, client.WithTransport(client.TransportLongPoll))
	defer w.Close()
	if _, err := w.WaitFor(within(t), func(s client.State) bool { return s.Ready }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	return polls.Load()
}

// A long poll answered at once with nothing new (204 before its timeout, a
// proxy replaying the same snapshot, a message of no known type) is paced
// by the backoff: the watcher used to poll again at once, thousands of
// times a second, for as long as the server kept answering so.
func TestLongPollAnsweredAtOnceWithNothingNewBacksOff(t *testing.T) {
	answers := map[string]func(w http.ResponseWriter){
		"204": func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) },
		"same snapshot": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"type":"snapshot","id":"stream","version":1,"epoch":"e1","offset":0,"size":0,"entries":[]}`)
		},
		"empty object": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{}`)
		},
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			srv, polls := hostilePoller(t, answer)
			if n := pollsInASecond(t, srv.URL, polls, 100*time.Millisecond, client.WithLongPollTimeout(10*time.Second)); n > 100 {
				t.Errorf("%d polls in a second answered at once with nothing new; want them paced by the backoff (at most 100 ms apart)", n)
			}
		})
	}
}

// The epoch read that precedes an SSE stream or a long poll is bounded by
// the read timeout: a server that never answered it left the watcher
// waiting forever, never reconnecting.
func TestEpochReadThatNeverAnswersIsRetried(t *testing.T) {
	for _, transport := range []string{client.TransportSSE, client.TransportLongPoll} {
		t.Run(transport, func(t *testing.T) {
			var reads atomic.Int64
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/leaderboards/b/rankings", func(w http.ResponseWriter, r *http.Request) {
				if reads.Add(1) == 1 {
					<-r.Context().Done() // the first read is never answered
					return
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"leaderboard_id":"b","version":1,"epoch":"e1","total_participants":0,"entries":[]}`)
			})
			const snapshot = `{"type":"snapshot","id":"stream","version":1,"epoch":"e1","offset":0,"size":0,"entries":[]}`
			mux.HandleFunc("GET /v1/leaderboards/b/stream", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "event: snapshot\nid: 1\ndata: %s\n\n", snapshot)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			})
			mux.HandleFunc("GET /v1/leaderboards/b/updates", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, snapshot)
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			c := client.New(srv.URL, client.WithReadTimeout(300*time.Millisecond), client.WithBackoff(time.Millisecond, 10*time.Millisecond))
			w := c.WatchTop(context.Background(), "b", 5, client.WithTransport(transport))
			defer w.Close()
			if s, err := w.WaitFor(within(t), func(s client.State) bool { return s.Ready }); err != nil {
				t.Fatalf("%v: state %+v after %d epoch reads, the first never answered", err, s, reads.Load())
			}
		})
	}
}

// A WebSocket dial is bounded by the read timeout: a server that accepts the
// connection and never answers the TLS handshake held the watcher forever
// (the TCP dial and the TLS handshake had no limit but the watcher's
// context), never reconnecting nor falling back.
func TestWebSocketDialToASilentServerIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c) // held open, never a byte
		}
	}()
	c := client.New("https://"+ln.Addr().String(), client.WithReadTimeout(200*time.Millisecond), client.WithBackoff(time.Millisecond, 10*time.Millisecond))
	w := c.WatchTop(context.Background(), "b", 5, client.WithTransport(client.TransportWebSocket))
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	_ = w.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if n := accepted.Load(); n < 3 {
		t.Errorf("%d connections in 1.5 s to a server silent in the TLS handshake, with a read timeout of 200 ms; want a new one after each timeout", n)
	}
}

// The answer to a WebSocket upgrade is read with a bound: a server that
// answered 101 with a header line that never ends made the client read
// (and hold) everything it sent until the 10 s handshake timeout,
// gigabytes on a fast link.
func TestWebSocketUpgradeAnswerWithAnEndlessHeaderIsCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	written := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for { // the upgrade request
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		var n int64
		_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nX-Endless: "))
		chunk := []byte(strings.Repeat("a", 1<<20))
		for n < 256<<20 { // bounded: without a limit the client reads all of it
			m, err := c.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}()
	w := client.New("http://"+ln.Addr().String()).WatchTop(context.Background(), "b", 5, client.WithTransport(client.TransportWebSocket))
	defer w.Close()
	select {
	case n := <-written:
		if n >= 16<<20 {
			t.Errorf("the client read %d MiB of one header line", n>>20)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client neither read the endless header nor closed the connection")
	}
}

// Polls that fail every other time back off like streams that keep
// breaking: the backoff restarts only after polls answered for a while.
// Each answered poll used to restart it, so a server that answered one poll
// and failed the next was polled again within the first step (1 ms here),
// hundreds of times a second.
func TestLongPollFailingEveryOtherPollBacksOff(t *testing.T) {
	var polls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/leaderboards/b/rankings", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"leaderboard_id":"b","version":1,"epoch":"e1","total_participants":0,"entries":[]}`)
	})
	mux.HandleFunc("GET /v1/leaderboards/b/updates", func(w http.ResponseWriter, r *http.Request) {
		n := polls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if n%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":{"code":"internal","message":"broken"}}`)
			return
		}
		fmt.Fprintf(w, `{"type":"snapshot","id":"stream","version":%d,"epoch":"e1","offset":0,"size":0,"entries":[]}`, n)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if n := pollsInASecond(t, srv.URL, &polls, 200*time.Millisecond); n > 100 {
		t.Errorf("%d polls in a second, every other one failing; want the backoff to grow to 200 ms", n)
	}
}

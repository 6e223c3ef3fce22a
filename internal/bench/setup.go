package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Setup requests (create, seed) are not measured; they get a generous timeout and a few retries
// because the run is meaningless if they fail.
const (
	setupTimeout  = 60 * time.Second
	setupAttempts = 5
	seedBatchSize = 1000 // the API maximum; ~55 KB of JSON, far below any body limit
	seedWorkers   = 4
)

// setupRequest sends one request, retrying on transport errors and on 429/503 (after Retry-After
// when given). Retrying a create or a seeding batch is harmless: both are idempotent here.
func setupRequest(ctx context.Context, client *fasthttp.HostClient, method, uri, token string, body []byte) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}

	var lastErr error
	for attempt := 0; attempt < setupAttempts; attempt++ {
		if attempt > 0 {
			delay := time.Duration(attempt) * 200 * time.Millisecond
			if s, err := strconv.Atoi(string(resp.Header.Peek("Retry-After"))); err == nil && s > 0 {
				delay = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			case <-time.After(delay):
			}
		}
		if err := client.DoTimeout(req, resp, setupTimeout); err != nil {
			lastErr = err
			resp.Reset()
			continue
		}
		code := resp.StatusCode()
		if code == fasthttp.StatusTooManyRequests || code == fasthttp.StatusServiceUnavailable {
			lastErr = fmt.Errorf("HTTP %d: %s", code, snippet(resp.Body()))
			continue
		}
		return code, append([]byte(nil), resp.Body()...), nil
	}
	return 0, nil, fmt.Errorf("%s %s: %w (after %d attempts)", method, uri, lastErr, setupAttempts)
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// createBoards creates each leaderboard; one that already exists (409 already_exists) is fine.
func createBoards(ctx context.Context, client *fasthttp.HostClient, base, token string, ids []string, logw io.Writer) error {
	created := 0
	for _, id := range ids {
		body, _ := json.Marshal(map[string]string{"leaderboard_id": id, "name": id})
		code, resp, err := setupRequest(ctx, client, "POST", base+"/v1/leaderboards", token, body)
		if err != nil {
			return fmt.Errorf("create leaderboard %s: %w", id, err)
		}
		switch {
		case code == fasthttp.StatusCreated:
			created++
		case code == fasthttp.StatusConflict && bytes.Contains(resp, []byte("already_exists")):
		default:
			return fmt.Errorf("create leaderboard %s: HTTP %d: %s", id, code, snippet(resp))
		}
	}
	fmt.Fprintf(logw, "bench: %d leaderboard(s) ready (%d created, %d already existed)\n",
		len(ids), created, len(ids)-created)
	return nil
}

// seedBoards gives every leaderboard the participants p000000000000000 .. p<SeedParticipants-1>
// through scores:batch, so that lookups hit existing participants and the top-100 is full.
// It returns the number of participants sent and the per-item errors the server reported.
func seedBoards(ctx context.Context, client *fasthttp.HostClient, base string, cfg Config, ids []string, logw io.Writer) (seeded, itemErrors int64, err error) {
	n := cfg.SeedParticipants
	if n == 0 {
		return 0, 0, nil
	}
	fmt.Fprintf(logw, "bench: seeding %d participants into each of %d leaderboard(s)\n", n, len(ids))

	type job struct {
		board, first, count, index int
	}
	var jobs []job
	for b := range ids {
		for first := 0; first < n; first += seedBatchSize {
			jobs = append(jobs, job{board: b, first: first, count: min(seedBatchSize, n-first), index: len(jobs)})
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	// Seeding is a handful of large requests; a few in parallel keep the server busy without
	// measuring anything, and the first failure stops the rest.
	for range min(seedWorkers, cfg.Connections, len(jobs)) {
		wg.Go(func() {
			var body []byte
			for {
				mu.Lock()
				if next == len(jobs) || firstErr != nil {
					mu.Unlock()
					return
				}
				j := jobs[next]
				next++
				mu.Unlock()

				// Scores come from the run's seed, so a seeded board is reproducible.
				rng := rand.New(rand.NewPCG(cfg.Seed, 1<<32|uint64(j.index)))
				body = append(body[:0], `{"scores":[`...)
				for i := 0; i < j.count; i++ {
					if i > 0 {
						body = append(body, ',')
					}
					body = append(body, `{"participant_id":"`...)
					body = appendPID(body, j.first+i)
					body = append(body, `","score":`...)
					body = strconv.AppendInt(body, rng.Int64N(1_000_000_000), 10)
					body = append(body, '}')
				}
				body = append(body, "]}"...)

				uri := base + "/v1/leaderboards/" + ids[j.board] + "/scores:batch"
				code, resp, err := setupRequest(ctx, client, "POST", uri, cfg.Token, body)
				if err == nil && code != fasthttp.StatusOK {
					err = fmt.Errorf("POST %s: HTTP %d: %s", uri, code, snippet(resp))
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				} else {
					seeded += int64(j.count)
					itemErrors += int64(bytes.Count(resp, errorKey))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return seeded, itemErrors, fmt.Errorf("seeding: %w", firstErr)
	}
	if itemErrors > 0 {
		fmt.Fprintf(logw, "bench: warning: the server rejected %d seeded items\n", itemErrors)
	}
	return seeded, itemErrors, nil
}

// boardParticipants returns the smallest total_participants of the leaderboards, 0 when one of
// them cannot be read.
func boardParticipants(ctx context.Context, client *fasthttp.HostClient, base, token string, ids []string) int {
	least := -1
	for _, id := range ids {
		code, body, err := setupRequest(ctx, client, "GET", base+"/v1/leaderboards/"+id, token, nil)
		if err != nil || code != fasthttp.StatusOK {
			return 0
		}
		var st struct {
			Participants int `json:"total_participants"`
		}
		if json.Unmarshal(body, &st) != nil {
			return 0
		}
		if least < 0 || st.Participants < least {
			least = st.Participants
		}
	}
	return max(least, 0)
}

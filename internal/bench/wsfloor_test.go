package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestViewersFloor runs `bench viewers --floor` end to end: the floor is a child process (this
// test binary, see TestMain), the viewers and the submissions are the unchanged tool.
func TestViewersFloor(t *testing.T) {
	if _, err := os.Executable(); err != nil {
		t.Skipf("no executable to re-exec: %v", err)
	}
	t.Setenv(floorChildEnv, "1")
	rep, _ := runViewersJSON(t, "--floor", "--viewers", "50", "--procs", "1", "--participants", "1000",
		"--rate", "200", "--top-rate", "20", "--duration", "2s", "--warmup", "300ms", "--connections", "4",
		"--random-seed", "7")
	// Everything a healthy run against the service shows: all subscribed, markers seen by every
	// viewer (seen ratio), no chain break, no error, markers at the rank aimed at, server frames.
	checkDelivery(t, rep, 50)
	v := rep.Viewers
	if !v.Floor || !strings.HasPrefix(rep.URL, "http://127.0.0.1:") {
		t.Errorf("floor %v, url %q: want the floor child's address", v.Floor, rep.URL)
	}
	// 20 markers/s x 0.3 s: they aim at 100 - 6 + 1, and the floor reports that rank.
	if v.MarkerLowestRank != 95 || v.MarkerRanks.Min != 95 || v.MarkerRanks.Max != 95 {
		t.Errorf("aimed at %d, landed at %+v: want 95", v.MarkerLowestRank, v.MarkerRanks)
	}
	if v.Server.CPUUSPerFrame <= 0 || v.Server.Frames < v.Frames/2 || v.BytesPerFrame <= 0 {
		t.Errorf("server %+v, viewers' frames %d of %g bytes", v.Server, v.Frames, v.BytesPerFrame)
	}
	if rep.SeededParticipants != 1000 || v.BoardParticipants != 1000 { // the batch items it received (the pads come after)
		t.Errorf("seeded %d, board participants %d", rep.SeededParticipants, v.BoardParticipants)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text.String(), "floor:       NOT the service") {
		t.Errorf("the text report does not start by saying it is the floor:\n%s", text.String())
	}
}

func newTestFloor(placement string, topRate float64) *wsFloor {
	return newWSFloor(wsFloorOptions{FlushInterval: 20 * time.Millisecond, TopLimit: 100, Placement: placement, TopRate: topRate, Seed: 1})
}

// post sends body to the floor's handler and returns the status and the response body.
func post(t *testing.T, h http.Handler, path, body string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(body)))
	return rec.Code, rec.Body.Bytes()
}

func submitMarker(t *testing.T, h http.Handler, k int64, score int64) (rank, version int64) {
	t.Helper()
	code, body := post(t, h, "/v1/leaderboards/b/scores", fmt.Sprintf(`{"participant_id":"mk-%d","score":%d}`, k, score))
	var res struct {
		ParticipantID string `json:"participant_id"`
		Score         int64  `json:"score"`
		Rank          int64  `json:"rank"`
		Version       int64  `json:"version"`
		Updated       bool   `json:"updated"`
	}
	if err := json.Unmarshal(body, &res); code != 200 || err != nil || res.ParticipantID != fmt.Sprintf("mk-%d", k) || res.Score != score || !res.Updated {
		t.Fatalf("marker %d: HTTP %d %s (%v)", k, code, body, err)
	}
	return res.Rank, res.Version
}

type floorUpdate struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	PrevVersion uint64 `json:"prev_version"`
	Version     uint64 `json:"version"`
	Size        int    `json:"size"`
	Changes     []struct {
		Rank          int    `json:"rank"`
		ParticipantID string `json:"participant_id"`
		Score         uint64 `json:"score"`
		AchievedAt    int64  `json:"achieved_at"`
	} `json:"changes"`
}

// TestWSFloorFrames: the floor's frames are found by the tool's own marker scan, their chain
// (snapshot, then prev_version = the version before) is unbroken, and a bottom frame carries the
// ranks from where markers enter down to the limit, the service's size.
func TestWSFloorFrames(t *testing.T) {
	f := newTestFloor(placeBottom, 100) // markers enter at 71
	h := f.handler()
	g := &viewerGroup{cfg: groupConfig{MarkerBase: 100}, acks: new(ackTable)}
	g.setWindow(time.Unix(0, 1), time.Unix(0, 1<<62))
	v := &viewer{g: g, kind: kindTop}
	g.ready.Add(1) // the snapshot marks the viewer ready
	now := time.Now().UnixNano()
	v.onFrame(nil, floorSubscribedFrame(f.version.Load()), now)
	v.onFrame(nil, floorSnapshotFrame(f.version.Load()), now)
	if !v.synced || v.version != 0 || v.epoch != wsFloorEpoch {
		t.Fatalf("after the snapshot: synced %v, version %d, epoch %q", v.synced, v.version, v.epoch)
	}

	k := int64(100)
	for round := 1; round <= 3; round++ {
		// A window without markers (random submissions only) makes no frame and no version.
		if code, body := post(t, h, "/v1/leaderboards/b/scores", `{"participant_id":"p000000000000001","score":5}`); code != 200 {
			t.Fatalf("random submission: HTTP %d %s", code, body)
		}
		if fr := f.flush(time.Now()); fr != nil || f.version.Load() != uint64(round-1) {
			t.Fatalf("a window without markers made frame %v, version %d", fr, f.version.Load())
		}
		for i := range 10 {
			rank, version := submitMarker(t, h, k+int64(i), markerScore0+k+int64(i))
			if rank != 71 || version != int64(round) {
				t.Fatalf("marker: rank %d, version %d: want 71, %d", rank, version, round)
			}
			g.acks.set(k+int64(i)-100, now)
		}
		fr := f.flush(time.Now())
		if fr == nil || fr.version != uint64(round) {
			t.Fatalf("round %d: frame %+v", round, fr)
		}
		var u floorUpdate
		if err := json.Unmarshal(fr.data, &u); err != nil {
			t.Fatalf("frame is not JSON: %v\n%s", err, fr.data)
		}
		if u.Type != "update" || u.ID != "v" || u.PrevVersion != uint64(round-1) || u.Version != uint64(round) || u.Size != 100 || len(u.Changes) != 30 {
			t.Fatalf("frame %s", fr.data)
		}
		for i, c := range u.Changes {
			want := "fl-" + fmt.Sprintf("%04d", 71+i)
			if i < 10 {
				want = "mk-" + strconv.FormatInt(k+9-int64(i), 10) // the newest at 71, each pushed the earlier ones down
			}
			if c.Rank != 71+i || c.ParticipantID != want || c.Score < markerScore0 || c.AchievedAt <= 0 {
				t.Errorf("change %d: %+v, want rank %d, %s", i, c, 71+i, want)
			}
		}
		// About the size of the service's frames at 100 markers/s (2.7 to 2.9 KB).
		if n := len(fr.data); n < 2500 || n > 3000 {
			t.Errorf("frame of %d bytes", n)
		}
		count := func() int64 {
			if h := g.hist[kindTop][0].h; h != nil {
				return h.TotalCount()
			}
			return 0
		}
		before := count()
		v.onFrame(nil, fr.data, time.Now().UnixNano())
		if v.st.chainBreaks != 0 || v.version != uint64(round) {
			t.Fatalf("round %d: chain breaks %d, version %d", round, v.st.chainBreaks, v.version)
		}
		if got := count() - before; got != 10 {
			t.Errorf("round %d: the tool's scan found %d of the 10 markers in %s", round, got, fr.data)
		}
		k += 10
	}

	// Top: every marker enters at 1, the frame carries the whole window.
	f = newTestFloor(placeTop, 100)
	h = f.handler()
	for i := range 3 {
		if rank, _ := submitMarker(t, h, int64(i), markerScore0+int64(i)); rank != 1 {
			t.Errorf("top marker at rank %d", rank)
		}
	}
	var u floorUpdate
	if err := json.Unmarshal(f.flush(time.Now()).data, &u); err != nil || len(u.Changes) != 100 || u.Changes[0].ParticipantID != "mk-2" ||
		u.Changes[2].ParticipantID != "mk-0" || u.Changes[3].ParticipantID != "fl-0004" || u.Changes[99].Rank != 100 {
		t.Errorf("top frame: %v %+v", err, u)
	}

	// Random: ranks in 1..71; the frame runs from the best one down to 100, markers where they are.
	f = newTestFloor(placeRandom, 100)
	h = f.handler()
	best := 100
	for i := range 8 {
		rank, _ := submitMarker(t, h, int64(i), markerScore0+int64(i))
		if rank < 1 || rank > 71 {
			t.Errorf("random marker at rank %d", rank)
		}
		best = min(best, int(rank))
	}
	u = floorUpdate{}
	if err := json.Unmarshal(f.flush(time.Now()).data, &u); err != nil || len(u.Changes) != 100-best+1 || u.Changes[0].Rank != best {
		t.Fatalf("random frame from rank %d: %v %+v", best, err, u)
	}
	markers := 0
	for _, c := range u.Changes {
		if strings.HasPrefix(c.ParticipantID, markerPrefix) {
			markers++
		}
	}
	if markers != 8 {
		t.Errorf("random frame holds %d of the 8 markers: %+v", markers, u.Changes)
	}
}

// TestWSFloorServes: bad submissions get 400 and the floor goes on serving: set-up requests,
// metrics, and WebSocket viewers that see the markers submitted afterwards.
func TestWSFloorServes(t *testing.T) {
	f := newTestFloor(placeBottom, 50)
	f.start()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	defer f.stop()
	h := f.handler()

	for _, body := range []string{
		``, `{`, `not json`, `{"participant_id":"mk-1"}`, `{"score":5}`, `{"participant_id":"","score":5}`,
		`{"participant_id":"a b","score":5}`, `{"participant_id":"mk-1","score":-5}`, `{"participant_id":"mk-1","score":1.5}`,
		`{"participant_id":"mk-1","score":1e3}`, `{"participant_id":"mk-1","score":01}`, `{"participant_id":"mk-1","score":"5"}`,
		`{"participant_id":"mk-1","score":99999999999999999999}`, `{"participant_id":"mk-1","score":18446744073709551615}`,
		`{"participant_id":"mk-1","score":`, `{"participant_id":"mk-1`, `{"participant_id":` + strings.Repeat("x", 70000) + `}`,
	} {
		code, resp := post(t, h, "/v1/leaderboards/b/scores", body)
		if code != 400 && code != 413 || !bytes.Contains(resp, []byte(`"error":{"code":`)) {
			t.Errorf("body %.40q: HTTP %d %s, want 400 with an error", body, code, resp)
		}
	}
	if f.flush(time.Now()) != nil {
		t.Error("rejected submissions made a frame")
	}
	if code, _ := post(t, h, "/v1/leaderboards/a%20b/scores", `{"participant_id":"mk-1","score":5}`); code != 400 {
		t.Errorf("bad leaderboard id: HTTP %d", code)
	}

	// The tool's set-up, through its own functions: create, board state, seeding, pads.
	cfg := DefaultConfig(ModeViewers)
	cfg.URL, cfg.Leaderboard, cfg.Participants, cfg.TopRate, cfg.Connections = srv.URL, "b", 1500, 50, 2
	client, err := newClient(srv.URL, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := createBoards(ctx, client, srv.URL, "", []string{"b"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg.SeedParticipants = 1500
	if seeded, itemErrs, err := seedBoards(ctx, client, srv.URL, cfg, []string{"b"}, io.Discard); err != nil || seeded != 1500 || itemErrs != 0 {
		t.Fatalf("seeding: %d, %d item errors, %v", seeded, itemErrs, err)
	}
	plan := newMarkerPlan(cfg, 0)
	if err := submitPads(ctx, client, srv.URL, cfg, plan, io.Discard); err != nil {
		t.Fatal(err)
	}
	st, err := readBoardState(ctx, client, srv.URL, cfg)
	if err != nil || st.Status != "active" || st.SortOrder != "desc" || st.MaxScore != nil || st.Participants != 1600 ||
		st.TopScore != uint64(plan.pads[0]) {
		t.Errorf("board state %+v (%v), want active, desc, 1600 participants, top score %d", st, err, plan.pads[0])
	}
	if code, resp := post(t, h, "/v1/leaderboards/b/scores:batch", `{"scores":[{"participant_id":"ok","score":1},{"participant_id":"x y","score":1}]}`); code != 200 ||
		bytes.Count(resp, errorKey) != 1 {
		t.Errorf("batch with a bad item: HTTP %d %s, want one error", code, resp)
	}

	// Viewers: subscribed, then the markers submitted now reach each of them once, in an unbroken chain.
	gc := groupConfig{WSURL: wsURL(srv.URL, "b"), Viewers: 3, Mix: "top=1", TopLimit: 100, Participants: 10, Timeout: 5 * time.Second, MarkerBase: 100}
	acks := new(ackTable)
	g, err := newViewerGroup(gc, acks)
	if err != nil {
		t.Fatal(err)
	}
	g.start()
	defer g.stop()
	if ri, err := g.waitReady(nil, 10*time.Second, io.Discard, ""); err != nil || ri.Subscribed != 3 {
		t.Fatalf("ready %+v %v", ri, err)
	}
	g.setWindow(time.Now(), time.Now().Add(time.Hour))
	for i := range 20 {
		submitMarker(t, h, 100+int64(i), markerScore0+100+int64(i))
		acks.set(int64(i), time.Now().UnixNano())
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a few flushes
	res := g.finish()
	var obs int64
	for _, hh := range res.hist {
		if hh != nil {
			obs += hh.TotalCount()
		}
	}
	if obs != 60 || res.ChainBreaks != 0 || res.Errors != 0 || res.Updates == 0 {
		t.Errorf("%d observations (want 3 viewers x 20 markers), %d chain breaks, %d errors, %d updates (samples %q)",
			obs, res.ChainBreaks, res.Errors, res.Updates, res.ErrorSamples)
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := map[string]float64{}
	if !parseMetrics(body, m) || m["leaderboard_live_frames_total"] < float64(res.Updates) || m["process_cpu_seconds_total"] <= 0 ||
		m["go_memstats_heap_inuse_bytes"] <= 0 || m["go_memstats_stack_inuse_bytes"] <= 0 || m["leaderboard_live_frame_bytes_total"] <= 0 {
		t.Errorf("metrics %v (viewers got %d updates)", m, res.Updates)
	}
}

func TestWSFloorServerMode(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"--top-limit", "0"}, {"--marker-rank", "middle"}, {"--flush-interval", "0s"}, {"extra"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(append([]string{wsFloorMode}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("%s %q: exit %d, want 2", wsFloorMode, args, code)
		}
	}
	var stdout, stderr bytes.Buffer
	code := Main([]string{wsFloorMode, "--addr", "127.0.0.1:0", "--max-lifetime", "50ms"}, &stdout, &stderr)
	if code != 0 || !strings.HasPrefix(stdout.String(), "127.0.0.1:") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	// --floor ignores --url: a remote one does not clash with the loopback source addresses.
	if _, code, ok := parseArgs(ModeViewers, []string{"--floor", "--url", "http://10.1.2.3:8080"}, &stderr); !ok {
		t.Errorf("--floor with a remote --url: exit %d, %s", code, stderr.String())
	}
	stdout.Reset()
	if Main([]string{"viewers", "-h"}, &stdout, &stderr); !strings.Contains(stderr.String(), "-floor") {
		t.Error("viewers -h does not list --floor")
	}
}

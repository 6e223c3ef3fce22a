package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the result of one run. Field names in JSON are stable (snake_case):
// scripts and later tools compare reports across runs.
type Report struct {
	Mode        string  `json:"mode"`
	URL         string  `json:"url"`
	Method      string  `json:"method,omitempty"` // floor only
	Loop        string  `json:"loop"`             // "open" (rate > 0) or "closed"
	TargetRate  float64 `json:"target_rate"`      // requests/s; 0 = closed loop
	Connections int     `json:"connections"`
	StartedAt   string  `json:"started_at"` // RFC 3339, when the load (warmup included) started

	// DurationS is the measured window: warmup excluded, shorter than asked when interrupted.
	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s"`

	Leaderboards int    `json:"leaderboards,omitempty"`
	Participants int    `json:"participants,omitempty"`
	Batch        int    `json:"batch,omitempty"`
	Seed         uint64 `json:"seed"`

	// Requests counts every request sent inside the measured window, whatever its outcome.
	Requests     int64   `json:"requests"`
	RequestsPerS float64 `json:"requests_per_s"`
	// Scores counts the scores carried by the requests the server took (2xx;
	// batch * requests for batch runs); submit only.
	Scores     int64   `json:"scores,omitempty"`
	ScoresPerS float64 `json:"scores_per_s,omitempty"`
	// ItemErrors counts per-item {"error":...} entries inside 2xx batch responses.
	ItemErrors int64 `json:"item_errors"`

	// ErrorsTotal = non-2xx responses + transport errors + timeouts. Errors breaks it down by kind:
	// "http_<status>", "timeout", "connect", "closed", "no_free_conns", "other".
	ErrorsTotal int64            `json:"errors_total"`
	Errors      map[string]int64 `json:"errors"`
	Status      map[string]int64 `json:"status"` // responses by HTTP status code

	// LatencyMS covers every request that got a response (any status) plus timeouts. In open loop it
	// is measured from the intended send time (coordinated-omission corrected), except that up to
	// 1 ms of timer wake-up lateness of an idle connection is not charged (see timerSlack).
	LatencyMS Latency `json:"latency_ms"`
	// SendLagMS (open loop only) is how late requests left compared with their schedule: a large
	// value means the client or the server could not keep up and LatencyMS includes queueing time.
	SendLagMS *Latency `json:"send_lag_ms,omitempty"`
	// MissedSends (open loop only) counts scheduled requests never sent because the window ended
	// while the workers were behind schedule.
	MissedSends int64 `json:"missed_sends"`
	// WarmupRequests were sent during warmup and are not in any other figure.
	WarmupRequests int64 `json:"warmup_requests"`

	// Ops breaks requests and latency down by request kind when a mode mixes several (read: top, lookup).
	Ops map[string]OpReport `json:"ops,omitempty"`

	TopRatio           float64 `json:"top_ratio,omitempty"`
	SeededParticipants int64   `json:"seeded_participants,omitempty"`
	SeedItemErrors     int64   `json:"seed_item_errors,omitempty"`
	SeedDurationS      float64 `json:"seed_duration_s,omitempty"`
	// LookupParticipants: read lookups draw p0..p<n-1> uniformly (the boards' size, at least the seeded).
	LookupParticipants int `json:"lookup_participants,omitempty"`

	// Client CPU is user+sys time of the bench process over the measured window; the bench shares the
	// machine with the server, so this is what it took away from it.
	ClientCPUS     float64 `json:"client_cpu_s"`
	ClientCPUCores float64 `json:"client_cpu_cores"`
	// ServerCPUCores is only known for floor, where the server is our own child process.
	ServerCPUCores float64 `json:"server_cpu_cores,omitempty"`

	// Viewers is the viewers mode's part: WebSocket viewers, delivery delay, frames, server cost.
	Viewers *ViewersReport `json:"viewers,omitempty"`

	Interrupted bool `json:"interrupted"`
}

// ViewersReport is what the viewers mode measured besides the submissions (which fill the
// request fields of Report: requests, latency_ms of the acknowledgements, ops submit/marker).
// MB are 10^6 bytes.
type ViewersReport struct {
	// Floor: the run was against "bench ws-floor-server" (--floor), a trivial broadcaster, not the service.
	Floor             bool    `json:"floor"`
	Leaderboard       string  `json:"leaderboard"`
	Idle              bool    `json:"idle"`
	Procs             int     `json:"procs"`
	Mix               string  `json:"mix"`
	TopLimit          int     `json:"top_limit"`
	Radius            int     `json:"radius"`
	Participants      int     `json:"participants"`
	BoardParticipants int64   `json:"board_participants"` // total_participants when the run started
	TopRate           float64 `json:"top_rate"`
	Ramp              float64 `json:"ramp"`
	SourceIPs         int     `json:"source_ips"`
	MarkerBase        int64   `json:"marker_base"` // markers of this run are mk-<marker_base> and up

	// MarkerRank is the placement of markers (--marker-rank): they aim at rank 1 (top), at
	// MarkerLowestRank (bottom) or at a uniform rank in 1..MarkerLowestRank (random). Pads were
	// submitted before the viewers connected (bottom, random: mk-<marker_base - pads> and up, above
	// every other score, so that the top N holds only markers). MarkerRanks are the ranks the
	// responses gave for the markers acknowledged in the window.
	MarkerRank       string    `json:"marker_rank"`
	MarkerLowestRank int       `json:"marker_lowest_rank"`
	Pads             int       `json:"pads"`
	MarkerRanks      RankStats `json:"marker_ranks"`

	Viewers          int              `json:"viewers"` // asked for
	Connected        int64            `json:"connected"`
	ConnectFailures  int64            `json:"connect_failures"`
	Subscribed       int64            `json:"subscribed"` // viewers that got their first snapshot
	SubscribedByKind map[string]int64 `json:"subscribed_by_kind"`
	Subscriptions    int64            `json:"subscriptions"` // "subscribed" confirmations, resubscriptions included
	ConnectS         float64          `json:"connect_s"`     // time to connect and subscribe them all

	// Markers were acknowledged inside the measured window (MarkersAcked: over the whole run).
	Markers      int64   `json:"markers"`
	MarkersPerS  float64 `json:"markers_per_s"`
	MarkersAcked int64   `json:"markers_acked"`
	// LatencyMS is the delay from a marker's acknowledgement (HTTP 200 at the submitter) to its first
	// arrival at a viewer, over every viewer x marker observation of markers acknowledged in the window.
	Observations int64                 `json:"observations"`
	LatencyMS    Latency               `json:"latency_ms"`
	Kinds        map[string]KindReport `json:"kinds"`
	// ArrivalLatencyMS is the same delay to the moment the frame reached the viewer's socket (the
	// kernel's receive timestamp, SO_TIMESTAMPNS), every kind together: LatencyMS less the time the
	// load tool took to get round to reading it. On one machine the two differ by the tool's own
	// queueing; a viewer on its own device is nearer the arrival figure.
	ArrivalObservations int64    `json:"arrival_observations"`
	ArrivalLatencyMS    *Latency `json:"arrival_latency_ms,omitempty"`
	// TopSeenRatio = observations by top viewers / (top viewers x markers): 1 when every top viewer
	// got every marker in an update.
	TopSeenRatio float64 `json:"top_seen_ratio"`
	// EarlyObservations arrived before the acknowledgement (recorded as 0); UnackedObservations are
	// markers seen whose submission never got a 2xx (not recorded).
	EarlyObservations   int64 `json:"early_observations"`
	UnackedObservations int64 `json:"unacked_observations"`

	// Frames and bytes received by the viewers inside the measured window.
	Frames        int64   `json:"frames"`
	FramesPerS    float64 `json:"frames_per_s"`
	Bytes         int64   `json:"bytes"`
	MBPerS        float64 `json:"mb_per_s"`
	BytesPerFrame float64 `json:"bytes_per_frame"`

	Resyncs           int64 `json:"resyncs"`
	Errors            int64 `json:"errors"`       // "error" messages
	ChainBreaks       int64 `json:"chain_breaks"` // updates whose prev_version was not the last version applied
	Disconnects       int64 `json:"disconnects"`  // connections closed during the run (each is reopened and resumed)
	Reconnects        int64 `json:"reconnects"`
	ReconnectFailures int64 `json:"reconnect_failures"`
	// ErrorsTotal = connect failures + error messages + disconnects.
	ErrorsTotal  int64    `json:"errors_total"`
	ErrorSamples []string `json:"error_samples,omitempty"`

	Server ServerLiveReport `json:"server"`
}

// RankStats summarizes the ranks markers landed at; OutsideWindow counts those below the top N
// (which top viewers never see).
type RankStats struct {
	Count         int64 `json:"count"`
	Min           int64 `json:"min"`
	P50           int64 `json:"p50"`
	Max           int64 `json:"max"`
	OutsideWindow int64 `json:"outside_window"`
}

// KindReport is the share of one subscription kind.
type KindReport struct {
	Viewers      int64   `json:"viewers"`
	Observations int64   `json:"observations"`
	SeenRatio    float64 `json:"seen_ratio,omitempty"` // top only
	LatencyMS    Latency `json:"latency_ms"`
}

// ServerLiveReport is the server's side, from its /metrics: counters over the measured window, and
// memory from before the viewers connected to when they were all subscribed (--idle: to the end of
// the hold), divided by the subscribed viewers. The memory figures are only meaningful for many
// connections on a server that has not served a larger run before (Go keeps freed memory for a
// while, and the heap still holds the garbage of seeding): use --idle with thousands of viewers.
type ServerLiveReport struct {
	MetricsOK   bool    `json:"metrics_ok"`
	Connections int64   `json:"websocket_connections"`
	Frames      int64   `json:"frames"`
	FramesPerS  float64 `json:"frames_per_s"`
	Bytes       int64   `json:"bytes"`
	MBPerS      float64 `json:"mb_per_s"`
	Resyncs     int64   `json:"resyncs"`
	CPUCores    float64 `json:"cpu_cores"`
	// Merged is the updates the server made but merged into others for
	// connections that fell behind (never sent on their own); CPUUSPerFrame
	// divides the server's CPU by the updates it did send (Frames - Merged, or
	// the frames its writes carried when fewer: a node falling behind queues more than it writes).
	Merged        int64   `json:"merged,omitempty"`
	CPUUSPerFrame float64 `json:"cpu_us_per_frame"`
	// FramesPerWrite is frames written per write call (from the gateway's
	// counters; 0 when the server does not report them): above 1, the
	// server was behind and gave connections several frames at once.
	FramesPerWrite           float64  `json:"frames_per_write,omitempty"`
	RSSBeforeBytes           int64    `json:"rss_before_bytes"`
	RSSAfterBytes            int64    `json:"rss_after_bytes"`
	MemoryPerConnectionBytes *float64 `json:"memory_per_connection_bytes,omitempty"`
	HeapPerConnectionBytes   *float64 `json:"heap_per_connection_bytes,omitempty"`
	StackPerConnectionBytes  *float64 `json:"stack_per_connection_bytes,omitempty"`
}

// Latency holds quantiles in milliseconds with 3 decimals (microsecond resolution).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// OpReport is the share of one request kind.
type OpReport struct {
	Requests  int64   `json:"requests"`
	LatencyMS Latency `json:"latency_ms"`
}

// Histogram bounds: values are microseconds, 1 µs to 60 s, 3 significant digits.
const (
	histMinUS   = 1
	histMaxUS   = 60_000_000
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMinUS, histMaxUS, histSigFigs) }

// latencyOf reads the quantiles of a microsecond histogram.
func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return round3(float64(us) / 1000) }
	return Latency{
		P50:  ms(h.ValueAtQuantile(50)),
		P90:  ms(h.ValueAtQuantile(90)),
		P99:  ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)),
		Max:  ms(h.Max()),
		Mean: round3(h.Mean() / 1000),
	}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteText writes the human-readable report.
func (r Report) WriteText(w io.Writer) error {
	if r.Viewers != nil {
		return r.writeViewersText(w)
	}
	var b strings.Builder
	target := "closed loop"
	if r.TargetRate > 0 {
		target = fmt.Sprintf("open loop, target %g req/s", r.TargetRate)
	}
	fmt.Fprintf(&b, "mode:        %s (%s, %d connections)\n", r.Mode, target, r.Connections)
	fmt.Fprintf(&b, "url:         %s\n", r.URL)
	if r.Method != "" {
		fmt.Fprintf(&b, "method:      %s\n", r.Method)
	}
	if r.Mode == "submit" {
		fmt.Fprintf(&b, "workload:    %d leaderboard(s), %d participants, batch %d, seed %d\n",
			r.Leaderboards, r.Participants, r.Batch, r.Seed)
	}
	if r.Mode == "read" {
		fmt.Fprintf(&b, "workload:    %d leaderboard(s), top ratio %g, seed %d\n", r.Leaderboards, r.TopRatio, r.Seed)
		fmt.Fprintf(&b, "seeded:      %d participants in %.3f s (%d item errors); lookups over %d participants\n",
			r.SeededParticipants, r.SeedDurationS, r.SeedItemErrors, r.LookupParticipants)
	}
	interrupted := ""
	if r.Interrupted {
		interrupted = " (interrupted)"
	}
	fmt.Fprintf(&b, "duration:    %.3f s measured%s, warmup %.3f s (%d requests not recorded)\n",
		r.DurationS, interrupted, r.WarmupS, r.WarmupRequests)
	fmt.Fprintf(&b, "requests:    %d (%.1f req/s)\n", r.Requests, r.RequestsPerS)
	if r.Mode == "submit" {
		fmt.Fprintf(&b, "scores:      %d (%.1f scores/s), item errors %d\n", r.Scores, r.ScoresPerS, r.ItemErrors)
	}
	if r.TargetRate > 0 {
		fmt.Fprintf(&b, "missed:      %d scheduled requests not sent\n", r.MissedSends)
	}
	fmt.Fprintf(&b, "errors:      %d%s\n", r.ErrorsTotal, formatCounts(r.Errors))
	fmt.Fprintf(&b, "status:      %s\n", joinCounts(r.Status))
	fmt.Fprintf(&b, "latency ms:  %s\n", formatLatency(r.LatencyMS))
	if r.SendLagMS != nil {
		fmt.Fprintf(&b, "send lag ms: %s\n", formatLatency(*r.SendLagMS))
	}
	for _, name := range sortedKeys(r.Ops) {
		op := r.Ops[name]
		fmt.Fprintf(&b, "  %-9s  %d requests, latency ms %s\n", name+":", op.Requests, formatLatency(op.LatencyMS))
	}
	fmt.Fprintf(&b, "client cpu:  %.3f s (%.3f cores)\n", r.ClientCPUS, r.ClientCPUCores)
	if r.ServerCPUCores > 0 {
		fmt.Fprintf(&b, "server cpu:  %.3f cores\n", r.ServerCPUCores)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatLatency(l Latency) string {
	return fmt.Sprintf("p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
}

// formatCounts renders " (a: 1, b: 2)" in key order, or "" when empty.
func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + joinCounts(m) + ")"
}

// joinCounts renders "a: 1, b: 2" in key order.
func joinCounts(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

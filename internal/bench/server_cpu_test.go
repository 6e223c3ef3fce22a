package bench

import (
	"math"
	"testing"
	"time"
)

// TestServerCPUPerFrameCountsFramesWritten: a node past its capacity (docs/BENCHMARKS.md, the
// morning table: 15,000 viewers, "119.3k/s (140.9k/s)", "0.95 cores, 6.7 µs") hands more update
// frames to its connections' queues (leaderboard_live_frames_total) than its writes carry
// (leaderboard_live_websocket_frames_written_total) and its viewers receive: the queues grow.
// "µs per update frame sent" must divide by the frames sent, not by the frames queued.
func TestServerCPUPerFrameCountsFramesWritten(t *testing.T) {
	const secs = 20.0
	t0 := time.Unix(1_000_000, 0)
	sample := func(at time.Time, cpu, handed, written, writes float64) metricsSample {
		return metricsSample{at: at, ok: true, v: map[string]float64{
			"process_cpu_seconds_total":                       cpu,
			"leaderboard_live_frames_total":                   handed,
			"leaderboard_live_websocket_frames_written_total": written,
			"leaderboard_live_websocket_writes_total":         writes,
			"leaderboard_live_websocket_connections":          15000,
			"process_resident_memory_bytes":                   1e8,
		}}
	}
	m0 := sample(t0, 100, 1e6, 1e6, 1e6)
	m1 := sample(t0.Add(secs*time.Second), 100+0.95*secs, 1e6+140_900*secs, 1e6+119_300*secs, 1e6+119_300*secs)
	rep := &Report{}
	vr := &ViewersReport{}
	fillServerReport(rep, vr, m0, m1, m0, m1, m1.at.Sub(m0.at), 15000)

	want := 0.95 * secs * 1e6 / (119_300 * secs) // 7.96 µs per frame written
	if got := vr.Server.CPUUSPerFrame; math.Abs(got-want) > 0.01 {
		t.Errorf("cpu_us_per_frame = %.2f, want %.2f: divided by the %d frames queued, not the %d written",
			got, want, int64(140_900*secs), int64(119_300*secs))
	}
}

// TestServerCPUPerFrameWhenMostUpdatesWereMerged: far past its capacity the node merges almost every
// update into a later one (15,000 viewers on a slow machine: 139.9k updates/s queued, 2.80M of the
// window's 2.80M merged, 8.9k frames/s received). Queued minus merged is then about nothing, or
// below nothing (the counters are read one after the other), and the figure was reported as
// "0.00 µs per update frame sent". The frames the writes carried are the ones sent.
func TestServerCPUPerFrameWhenMostUpdatesWereMerged(t *testing.T) {
	const secs = 20.0
	t0 := time.Unix(1_000_000, 0)
	sample := func(at time.Time, cpu, handed, merged, written, writes float64) metricsSample {
		return metricsSample{at: at, ok: true, v: map[string]float64{
			"process_cpu_seconds_total":                       cpu,
			"leaderboard_live_frames_total":                   handed,
			"leaderboard_live_updates_merged_total":           merged,
			"leaderboard_live_websocket_frames_written_total": written,
			"leaderboard_live_websocket_writes_total":         writes,
			"leaderboard_live_websocket_connections":          15000,
			"process_resident_memory_bytes":                   1e8,
		}}
	}
	m0 := sample(t0, 100, 1e6, 1e6, 1e6, 1e6)
	m1 := sample(t0.Add(secs*time.Second), 100+1.23*secs, 1e6+139_900*secs, 1e6+139_900*secs+300, 1e6+8_900*secs, 1e6+8_600*secs)
	rep := &Report{}
	vr := &ViewersReport{}
	fillServerReport(rep, vr, m0, m1, m0, m1, m1.at.Sub(m0.at), 15000)

	want := 1.23 * secs * 1e6 / (8_900 * secs) // 138 µs per frame written
	if got := vr.Server.CPUUSPerFrame; math.Abs(got-want) > 0.01 {
		t.Errorf("cpu_us_per_frame = %.2f, want %.2f (divided by the frames written)", got, want)
	}
}

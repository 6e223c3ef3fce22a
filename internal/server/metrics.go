package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/gateway"
	"github.com/lbhq/leaderboard/internal/relay"
)

// liveCollectors exposes the fan-out's and the gateway's counters.
func liveCollectors(hub *fanout.Hub, gw *gateway.Gateway) []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		gauge("leaderboard_live_websocket_connections", "Open WebSocket connections.", func() float64 { return float64(gw.Snapshot().WebSockets) }),
		gauge("leaderboard_live_sse_streams", "Open SSE streams.", func() float64 { return float64(gw.Snapshot().SSE) }),
		gauge("leaderboard_live_long_polls", "Long polls waiting.", func() float64 { return float64(gw.Snapshot().LongPolls) }),
		gauge("leaderboard_live_segments", "Distinct windows (top-N, participant, around) with subscribers.", func() float64 { return float64(hub.Snapshot().SegmentsNow) }),
		counter("leaderboard_live_connections_rejected_total", "WebSocket upgrades, SSE streams and long polls refused by --max-connections.", func() float64 { return float64(gw.Snapshot().Rejected) }),
		counter("leaderboard_live_messages_refused_total", "WebSocket client messages past --ws-message-rate, answered rate_limited.", func() float64 { return float64(gw.Snapshot().MessagesRefused) }),
		counter("leaderboard_live_rate_limited_closes_total", "WebSocket connections closed (1008) for sending past --ws-message-rate --ws-message-burst times in a row.", func() float64 { return float64(gw.Snapshot().RateLimitedCloses) }),
		counter("leaderboard_live_resyncs_total", "Subscriptions told to resync (slow readers).", func() float64 { return float64(gw.Snapshot().Resyncs) }),
		counter("leaderboard_live_websocket_writes_total", "Write calls that carried frames to WebSocket connections; a connection that fell behind gets all its waiting frames in one.", func() float64 { return float64(gw.Snapshot().Writes) }),
		counter("leaderboard_live_websocket_frames_written_total", "Frames (of every type) those writes carried: above 1 per write, the node is behind.", func() float64 { return float64(gw.Snapshot().FramesWritten) }),
		counter("leaderboard_live_updates_merged_total", "Updates not sent on their own: a WebSocket connection or SSE stream that fell behind got its waiting updates of a subscription merged into one.", func() float64 { return float64(gw.Snapshot().UpdatesMerged) }),
		counter("leaderboard_live_updates_encoded_total", "Segment updates encoded (once each, whatever the number of subscribers).", func() float64 { return float64(hub.Snapshot().Flushes) }),
		counter("leaderboard_live_frames_total", "Update frames handed to connections.", func() float64 { return float64(hub.Snapshot().Frames) }),
		counter("leaderboard_live_frame_bytes_total", "Bytes of update frames handed to connections.", func() float64 { return float64(hub.Snapshot().Bytes) }),
		counter("leaderboard_live_snapshots_total", "Snapshots sent on subscribe.", func() float64 { return float64(hub.Snapshot().Snapshots) }),
		counter("leaderboard_live_catchups_total", "Resumes served by one catch-up update.", func() float64 { return float64(hub.Snapshot().CatchUps) }),
	}
}

// historyCollectors are the history writer's metrics (none without persistence).
func historyCollectors(d *durable) []prometheus.Collector {
	if d.log == nil {
		return nil
	}
	w := d.log
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "leaderboard_history_queue", Help: "Score events waiting for the group commit (submissions get 503 past --history-queue)."},
			func() float64 { return float64(w.Stats().Queued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_history_events_written_total", Help: "Score events committed to the audit log."},
			func() float64 { return float64(w.Stats().Written) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_history_snapshots_written_total", Help: "Leaderboard snapshots committed."},
			func() float64 { return float64(w.Stats().Snapshots) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_history_commits_total", Help: "Successful group commits."},
			func() float64 { return float64(w.Stats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_history_commit_failures_total", Help: "Failed group commits (the batch is retried)."},
			func() float64 { return float64(w.Stats().Failures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_history_commit_seconds_total", Help: "Time spent committing."},
			func() float64 { return w.Stats().CommitTime.Seconds() }),
	}
}

// collectors exposes the outbox relay's counters in a process that runs it
// (the api role over Kafka); none otherwise. The relay starts before the
// server serves, so a scrape always sees it set.
func (c *cluster) collectors() []prometheus.Collector {
	if c == nil || !c.roles.api {
		return nil
	}
	stat := func(f func(relay.Stats) int64) func() float64 {
		return func() float64 {
			if c.relay == nil {
				return 0
			}
			return float64(f(c.relay.Stats()))
		}
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_relay_events_produced_total", Help: "Outbox events the relay produced to Kafka (acknowledged)."},
			stat(func(s relay.Stats) int64 { return s.Produced })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_relay_produce_failures_total", Help: "Produce calls to Kafka that failed (retried from the same cursor)."},
			stat(func(s relay.Stats) int64 { return s.Failures })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_relay_events_skipped_total", Help: "Events trimmed from an outbox (--outbox-max-len) before the relay produced them: lost to Kafka."},
			stat(func(s relay.Stats) int64 { return s.Skipped })),
	}
}

package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/gateway"
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
		counter("leaderboard_live_connections_rejected_total", "WebSocket upgrades refused by --max-connections.", func() float64 { return float64(gw.Snapshot().Rejected) }),
		counter("leaderboard_live_resyncs_total", "Subscriptions told to resync (slow readers).", func() float64 { return float64(gw.Snapshot().Resyncs) }),
		counter("leaderboard_live_updates_encoded_total", "Segment updates encoded (once each, whatever the number of subscribers).", func() float64 { return float64(hub.Snapshot().Flushes) }),
		counter("leaderboard_live_frames_total", "Update frames handed to connections.", func() float64 { return float64(hub.Snapshot().Frames) }),
		counter("leaderboard_live_frame_bytes_total", "Bytes of update frames handed to connections.", func() float64 { return float64(hub.Snapshot().Bytes) }),
		counter("leaderboard_live_snapshots_total", "Snapshots sent on subscribe.", func() float64 { return float64(hub.Snapshot().Snapshots) }),
		counter("leaderboard_live_catchups_total", "Resumes served by one catch-up update.", func() float64 { return float64(hub.Snapshot().CatchUps) }),
	}
}

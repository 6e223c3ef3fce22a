package bench

import (
	"fmt"
	"io"
	"strings"
)

// writeViewersText is WriteText for the viewers mode.
func (r Report) writeViewersText(w io.Writer) error {
	v := r.Viewers
	var b strings.Builder
	if v.Floor {
		fmt.Fprintf(&b, "floor:       NOT the service: the same tool against bench %s, a trivial gws broadcaster in a\n"+
			"             child process (no ranking, one frame per flush written to every connection): the machine's floor\n", wsFloorMode)
	}
	if v.Idle {
		fmt.Fprintf(&b, "mode:        viewers (idle: no submissions)\n")
	} else {
		fmt.Fprintf(&b, "mode:        viewers (open loop, target %g submissions/s of which %g markers/s, %d connections)\n",
			r.TargetRate, v.TopRate, r.Connections)
	}
	fmt.Fprintf(&b, "url:         %s\n", r.URL)
	seeded := ""
	if r.SeededParticipants > 0 {
		seeded = fmt.Sprintf(", seeded %d in %.3f s (%d item errors)", r.SeededParticipants, r.SeedDurationS, r.SeedItemErrors)
	}
	fmt.Fprintf(&b, "leaderboard: %s, %d participants%s, markers from mk-%d, seed %d\n",
		v.Leaderboard, v.BoardParticipants, seeded, v.MarkerBase, r.Seed)
	fmt.Fprintf(&b, "viewers:     %d asked (mix %s, top limit %d, radius %d), %d connected, %d connect failures,\n"+
		"             %d subscribed (%s) in %.3f s; %d process(es), %d source address(es), ramp %g/s\n",
		v.Viewers, v.Mix, v.TopLimit, v.Radius, v.Connected, v.ConnectFailures,
		v.Subscribed, joinCounts(v.SubscribedByKind), v.ConnectS, v.Procs, v.SourceIPs, v.Ramp)
	interrupted := ""
	if r.Interrupted {
		interrupted = " (interrupted)"
	}
	if v.Idle {
		fmt.Fprintf(&b, "duration:    %.3f s held%s\n", r.DurationS, interrupted)
	} else {
		fmt.Fprintf(&b, "duration:    %.3f s measured%s, warmup %.3f s (%d submissions not recorded)\n",
			r.DurationS, interrupted, r.WarmupS, r.WarmupRequests)
		fmt.Fprintf(&b, "submissions: %d (%.1f/s), missed %d, errors %d%s\n",
			r.Requests, r.RequestsPerS, r.MissedSends, r.ErrorsTotal, formatCounts(r.Errors))
		fmt.Fprintf(&b, "markers:     %d acknowledged in the window (%.1f/s), %d in the whole run\n",
			v.Markers, v.MarkersPerS, v.MarkersAcked)
		if v.TopRate > 0 {
			aim := fmt.Sprintf("rank %d", v.MarkerLowestRank)
			if v.MarkerRank == placeRandom {
				aim = fmt.Sprintf("ranks 1..%d", v.MarkerLowestRank)
			}
			pads := ""
			if v.Pads > 0 {
				pads = fmt.Sprintf(" (after %d pads)", v.Pads)
			}
			mr := v.MarkerRanks
			fmt.Fprintf(&b, "placement:   %s: aimed at %s of the top %d%s; landed at min %d, p50 %d, max %d, %d outside the window\n",
				v.MarkerRank, aim, v.TopLimit, pads, mr.Min, mr.P50, mr.Max, mr.OutsideWindow)
		}
		fmt.Fprintf(&b, "ack ms:      %s\n", formatLatency(r.LatencyMS))
		fmt.Fprintf(&b, "delivery ms: %s\n", formatLatency(v.LatencyMS))
		fmt.Fprintf(&b, "             (acknowledgement to viewer, %d viewer x marker observations; %d before the ack, %d never acked)\n",
			v.Observations, v.EarlyObservations, v.UnackedObservations)
		if v.ArrivalLatencyMS != nil {
			fmt.Fprintf(&b, "arrival ms:  %s\n", formatLatency(*v.ArrivalLatencyMS))
			fmt.Fprintf(&b, "             (acknowledgement to the frame's arrival in the viewer's socket, kernel timestamp; %d observations)\n",
				v.ArrivalObservations)
		}
		for _, name := range kindNames {
			k, ok := v.Kinds[name]
			if !ok {
				continue
			}
			seen := ""
			if name == "top" {
				seen = fmt.Sprintf(", seen ratio %.3f", k.SeenRatio)
			}
			if k.Observations == 0 {
				fmt.Fprintf(&b, "  %-12s %d viewers, no markers in their windows\n", name+":", k.Viewers)
				continue
			}
			fmt.Fprintf(&b, "  %-12s %d viewers, %d observations%s, ms %s\n", name+":", k.Viewers, k.Observations, seen, formatLatency(k.LatencyMS))
		}
	}
	fmt.Fprintf(&b, "frames:      viewers %.1f/s, %.3f MB/s (%d frames, %.0f bytes each)", v.FramesPerS, v.MBPerS, v.Frames, v.BytesPerFrame)
	sv := v.Server
	if sv.MetricsOK {
		fmt.Fprintf(&b, "; server %.1f/s, %.3f MB/s of updates", sv.FramesPerS, sv.MBPerS)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "problems:    %d resyncs, %d error messages, %d chain breaks, %d disconnects (%d reconnected, %d reconnect failures)\n",
		v.Resyncs, v.Errors, v.ChainBreaks, v.Disconnects, v.Reconnects, v.ReconnectFailures)
	for _, s := range v.ErrorSamples {
		fmt.Fprintf(&b, "  e.g. %s\n", s)
	}
	if sv.MetricsOK {
		fmt.Fprintf(&b, "server cpu:  %.3f cores", sv.CPUCores)
		if sv.CPUUSPerFrame > 0 {
			fmt.Fprintf(&b, ", %.2f µs per update frame sent", sv.CPUUSPerFrame)
			if sv.Merged > 0 {
				fmt.Fprintf(&b, " (%d more merged into others)", sv.Merged)
			}
		}
		if sv.FramesPerWrite > 0 {
			fmt.Fprintf(&b, ", %.2f frames per write", sv.FramesPerWrite)
		}
		fmt.Fprintf(&b, ", %d resyncs, %d WebSocket connections\n", sv.Resyncs, sv.Connections)
		if sv.MemoryPerConnectionBytes != nil {
			fmt.Fprintf(&b, "server mem:  rss %.1f -> %.1f MB: %.0f bytes per connection (heap %.0f, stacks %.0f)\n",
				float64(sv.RSSBeforeBytes)/1e6, float64(sv.RSSAfterBytes)/1e6,
				*sv.MemoryPerConnectionBytes, *sv.HeapPerConnectionBytes, *sv.StackPerConnectionBytes)
		}
	} else {
		b.WriteString("server:      /metrics not available, no server figures\n")
	}
	procs := ""
	if v.Procs > 1 {
		procs = fmt.Sprintf(", %d viewer processes included", v.Procs)
	}
	fmt.Fprintf(&b, "client cpu:  %.3f s (%.3f cores%s)\n", r.ClientCPUS, r.ClientCPUCores, procs)
	_, err := io.WriteString(w, b.String())
	return err
}

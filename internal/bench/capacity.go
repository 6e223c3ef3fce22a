package bench

import (
	"flag"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// capacitySummary is the mode's line in "leaderboard bench -h".
const capacitySummary = "the sizing formula of docs/SCALING.md: nodes per tier for --viewers and --updates (no load, nothing contacted)"

// capacityMain is "leaderboard bench capacity": the sizing formula of
// docs/SCALING.md as a calculator. Every per-node figure is a flag whose
// default was measured on the project's 2-core machine (docs/BENCHMARKS.md);
// rerun it with your own nodes' figures.
func capacityMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c capacityInput
	fs.Float64Var(&c.Viewers, "viewers", 10_000_000, "concurrent viewers over the fleet")
	fs.Float64Var(&c.Updates, "updates", 10_000, "score submissions per second over all leaderboards")
	fs.Float64Var(&c.WindowsPerSec, "windows-per-sec", 10, "flush windows per second (1 / --flush-interval)")
	fs.Float64Var(&c.ChangedShare, "changed-share", 1, "share of windows in which a viewer's window changes (1: every window, the worst case)")
	fs.Float64Var(&c.Segments, "segments", 2_000, "distinct windows watched anywhere and changing every window (top-N per N in use per busy board, tracked participants, around windows)")
	fs.Float64Var(&c.FrameBytes, "frame-bytes", 400, "average update frame size in bytes")
	fs.Float64Var(&c.GatewayFrameMicros, "gateway-frame-us", 6.7, "gateway CPU per delivered frame in µs (measured: 15,000 viewers, 2 cores)")
	fs.Float64Var(&c.GatewayCores, "gateway-cores", 2, "cores per gateway node")
	fs.Float64Var(&c.GatewayConnKB, "gateway-conn-kb", 11, "gateway memory per connection in KB (measured: 15,000 idle WebSockets)")
	fs.Float64Var(&c.GatewayMemGB, "gateway-mem-gb", 24, "memory per gateway node in GB")
	fs.Float64Var(&c.GatewayConnsPerProcess, "gateway-conns-per-process", 18_000, "connections per gateway process (open-file limit 20,000 here)")
	fs.Float64Var(&c.APISubmitsPerNode, "api-submits-per-node", 20_200, "submissions/s one API node serves at saturation with the Redis store (measured, 2 cores)")
	fs.Float64Var(&c.RedisSubmitsPerShard, "redis-submits-per-shard", 41_100, "submission scripts/s one Redis shard runs (measured: store benchmark)")
	fs.Float64Var(&c.FanoutSegmentMicros, "fanout-segment-us", 240, "fan-out CPU per segment update in µs (measured upper bound: BenchmarkSegmentFlush, relay and submitting client included)")
	fs.Float64Var(&c.RedisSegmentMicros, "redis-segment-us", 190, "Redis CPU per segment update in µs: window read, snapshot stored (measured: BenchmarkSegmentFlush, the submissions' scripts included)")
	fs.Float64Var(&c.FanoutCores, "fanout-cores", 2, "cores per fan-out node")
	fs.Float64Var(&c.KafkaPartitionMBps, "kafka-partition-mbps", 10, "MB/s one Kafka partition carries comfortably")
	fs.Float64Var(&c.HistoryEventsPerSec, "history-events-per-sec", 100_000, "audit events/s one PostgreSQL primary takes by COPY (measured)")
	fs.Float64Var(&c.Utilization, "utilization", 0.6, "target utilisation of every node (headroom for bursts and failures)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: leaderboard bench capacity [flags]\n\n%s.\n\n", capacitySummary)
		fmt.Fprintf(w, "Flags (each also read from %s_<FLAG> when not given, e.g. %s):\n", envPrefix, envName("viewers"))
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	writeCapacity(stdout, c.plan())
	return 0
}

type capacityInput struct {
	Viewers, Updates, WindowsPerSec, ChangedShare, Segments, FrameBytes       float64
	GatewayFrameMicros, GatewayCores, GatewayConnKB, GatewayMemGB             float64
	GatewayConnsPerProcess, APISubmitsPerNode, RedisSubmitsPerShard           float64
	FanoutSegmentMicros, FanoutCores, KafkaPartitionMBps, HistoryEventsPerSec float64
	Utilization, RedisSegmentMicros                                           float64
}

type capacityLine struct {
	Tier, Formula string
	Count         float64
}

func ceil(x float64) float64 { return math.Max(1, math.Ceil(x-1e-9)) }

// plan applies the formula of docs/SCALING.md.
func (c capacityInput) plan() []capacityLine {
	u := c.Utilization
	framesPerSec := c.Viewers * c.WindowsPerSec * c.ChangedShare
	byCPU := framesPerSec * c.GatewayFrameMicros / 1e6 / (c.GatewayCores * u)
	byMem := c.Viewers * c.GatewayConnKB / (c.GatewayMemGB * 1e6 * u)
	gateways := ceil(math.Max(byCPU, byMem))
	processes := ceil(c.Viewers / c.GatewayConnsPerProcess)
	segmentFlushes := c.Segments * c.WindowsPerSec * c.ChangedShare
	frameMBps := segmentFlushes * c.FrameBytes / 1e6
	fanouts := ceil(segmentFlushes * c.FanoutSegmentMicros / 1e6 / (c.FanoutCores * u))
	return []capacityLine{
		{"gateway nodes", fmt.Sprintf("max(CPU: %.3g frames/s × %.3g µs / (%.0f cores × %.0f%%), memory: %.3g viewers × %.0f KB / (%.0f GB × %.0f%%))",
			framesPerSec, c.GatewayFrameMicros, c.GatewayCores, u*100, c.Viewers, c.GatewayConnKB, c.GatewayMemGB, u*100), gateways},
		{"gateway processes", fmt.Sprintf("%.3g viewers / %.0f connections per process (open-file limit)", c.Viewers, c.GatewayConnsPerProcess), math.Max(processes, gateways)},
		{"API nodes", fmt.Sprintf("%.3g submissions/s / (%.3g per node × %.0f%%)", c.Updates, c.APISubmitsPerNode, u*100), ceil(c.Updates / (c.APISubmitsPerNode * u))},
		{"Redis shards (masters)", fmt.Sprintf("(%.3g submissions/s / %.3g per shard + %.3g segment updates/s × %.3g µs) / %.0f%%; one leaderboard lives in one shard",
			c.Updates, c.RedisSubmitsPerShard, segmentFlushes, c.RedisSegmentMicros, u*100),
			ceil((c.Updates/c.RedisSubmitsPerShard + segmentFlushes*c.RedisSegmentMicros/1e6) / u)},
		{"fan-out nodes", fmt.Sprintf("%.3g segment flushes/s × %.3g µs / (%.0f cores × %.0f%%)", segmentFlushes, c.FanoutSegmentMicros, c.FanoutCores, u*100), fanouts},
		{"Kafka partitions (frames)", fmt.Sprintf("%.3g MB/s of frames / %.0f MB/s per partition, at least one per fan-out node", frameMBps, c.KafkaPartitionMBps), math.Max(fanouts, ceil(frameMBps/c.KafkaPartitionMBps))},
		{"PostgreSQL primaries", fmt.Sprintf("%.3g audit events/s / (%.3g per primary × %.0f%%)", c.Updates, c.HistoryEventsPerSec, u*100), ceil(c.Updates / (c.HistoryEventsPerSec * u))},
	}
}

func writeCapacity(w io.Writer, lines []capacityLine) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "tier\tcount\thow")
	for _, l := range lines {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\n", l.Tier, l.Count, l.Formula)
	}
	tw.Flush()
}

// Package bus carries rank-change events from the ranking store to fan-out,
// and encoded frames from fan-out to the gateways. It has two
// implementations behind the same interfaces: Local (in-process, the
// single-node default) and Kafka (franz-go, `--kafka-brokers`, the scaled-out
// tiers). Both pass the conformance suite in bus/bustest.
//
// # Topology (Kafka)
//
//	API tier: score service -> ranking store (Redis: one Lua script per submission
//	          bumps the version and appends the event to the leaderboard's outbox)
//	          outbox relay -> EventProducer.ProduceSync -> topic <prefix>leaderboard.events
//	                                                        key = leaderboard id
//	fan-out:  EventConsumer (consumer group <prefix>fanout) <- leaderboard.events
//	          per leaderboard: coalesce, diff, encode once
//	          FrameProducer.PublishFrame -> topic <prefix>leaderboard.frames, key = leaderboard id
//	gateway:  FrameConsumer (no group) <- leaderboard.frames, only the partitions
//	          of the leaderboards its viewers watch -> callback -> connections
//
// leaderboard.events: every record is one store event (EncodeEvent: a
// compact binary value carrying the epoch, the leaderboard id and the
// version), keyed by leaderboard id and partitioned with Kafka's default key
// partitioner (murmur2 of the key, modulo the partition count; PartitionFor
// computes the same thing), so one leaderboard's events are in one partition
// in the order they were produced. The producer is franz-go's default
// idempotent producer, so retries neither reorder nor duplicate within a
// producer session; ProduceSync returns only once Kafka acknowledged every
// record (acks=all), so the outbox relay advances its cursor only after an
// ack. A relay that retries after a failure (the records may or may not have
// been written) can write an event twice: the log is at-least-once, and a
// duplicate carries a version the consumer has already seen.
//
// Fan-out processes share leaderboard.events in one consumer group: each
// partition, hence each leaderboard, has exactly one fan-out owner at a time.
// The consumer hands events to the handler one partition at a time, in log
// order, and commits a batch's offsets only after the handler returned
// without error (at-least-once). Partition assignment and revocation reach
// the handler (Assigned, Revoked): on Revoked the fan-out drops the
// leaderboards of those partitions, on Assigned it rebuilds them from the
// ranking store. After a handover the new owner starts at the last committed
// offset, so it may see events the previous owner already handled; they have
// versions at or below what the new owner read from the store (or what it
// saw last), and Dedup drops them. A consumer group with no committed offset
// starts at the end of the topic: fan-out state is rebuilt from the ranking
// store, not from old events.
//
// leaderboard.frames: every record is one frame envelope (EncodeFrame:
// leaderboard id, segment key, kind, version, prev_version, payload), keyed by
// leaderboard id with the same partitioner. Frames are produced
// asynchronously: a frame that cannot be sent within its delivery timeout is
// dropped, and the gateway sees a broken prev_version chain and resyncs from
// the ranking store. Gateways read frames without a consumer group, because
// every gateway needs every frame of the leaderboards its viewers watch,
// whoever else reads them. A gateway reads only the partitions that hold the
// leaderboards it watches (PartitionFor) and drops the records of other
// leaderboards on the same partitions by key, before decoding. With the
// connection router's affinity (registry.Pick sends a viewer to a gateway
// that already serves its leaderboard), a gateway serves a small set of
// leaderboards, so it reads a fraction of the frames instead of all of them.
// A partition starts at its end at the time of Watch (a gateway that joins
// late gets snapshots from the ranking store, not old frames); Watch returns
// once that position is fixed, so every frame produced after Watch returned
// is delivered.
//
// The partition count of both topics is fixed for their life: adding
// partitions moves leaderboards to other partitions (their order across the
// move is lost) and needs every gateway restarted.
//
// # Local
//
// Local implements the same interfaces in memory, with the same partitions,
// consumer groups, committed offsets and start positions, so the fan-out and
// gateway code paths are the same in one process and across a fleet.
package bus

import (
	"context"
	"errors"

	"github.com/lbhq/leaderboard/internal/store"
)

// Default topic names (after the configured prefix) and consumer group.
const (
	EventsTopic = "leaderboard.events"
	FramesTopic = "leaderboard.frames"
	FanoutGroup = "fanout"
)

// Event is one rank change on the bus: the store's event and the epoch its
// version belongs to (versions compare only within one epoch).
type Event struct {
	Epoch string
	store.Event
}

// Frame kinds, as the fan-out and gateways of this service use them.
const (
	KindSnapshot uint8 = 1 // Payload: a segment's snapshot body at Version
	KindUpdate   uint8 = 2 // Payload: a segment's update body from PrevVersion to Version
	KindStatus   uint8 = 3 // Segment "": Payload is the whole status message of the leaderboard
)

// Frame is one encoded update for one segment of one leaderboard, as the
// fan-out produces it for the gateways. The bus does not look inside Payload
// or give Kind a meaning; Segment "" may name the whole leaderboard (a status
// change). Payload is shared by every receiver and must not be modified.
type Frame struct {
	Board       string
	Segment     string
	Kind        uint8
	Version     uint64
	PrevVersion uint64
	Payload     []byte
}

// EventProducer writes rank-change events to the events topic.
type EventProducer interface {
	// ProduceSync writes events, each to its leaderboard's partition in the
	// order given, and returns once every one was acknowledged (nil) or one
	// failed (the others may or may not have been written). It gives up when
	// ctx ends.
	ProduceSync(ctx context.Context, events ...Event) error
	Close()
}

// EventHandler receives a consumer's partitions and events. Calls are never
// concurrent with each other.
type EventHandler interface {
	// Assigned: these partitions are now this consumer's; their events follow.
	Assigned(ctx context.Context, partitions []int32)
	// Revoked: these partitions are no longer this consumer's (a rebalance,
	// the group lost, or the consumer stopping). No Handle call for them
	// follows until they are assigned again.
	Revoked(ctx context.Context, partitions []int32)
	// Handle processes events of one partition, in log order. Returning nil
	// marks them processed: their offsets get committed. An error stops the
	// consumer (Run returns it) without committing them.
	Handle(ctx context.Context, partition int32, events []Event) error
}

// EventConsumer is one member of a consumer group over the events topic.
type EventConsumer interface {
	// Run joins the group and hands events to h until ctx ends (nil) or h
	// fails (its error). Before returning it commits what h processed,
	// calls Revoked for its partitions and leaves the group. Run is called
	// at most once.
	Run(ctx context.Context, h EventHandler) error
}

// FrameProducer writes frames to the frames topic.
type FrameProducer interface {
	// PublishFrame queues f and returns at once; frames of one leaderboard
	// are delivered in the order published. A frame that cannot be
	// delivered is dropped and counted.
	PublishFrame(f Frame)
	// Flush waits until every frame published before it was delivered or
	// dropped.
	Flush(ctx context.Context) error
	Close()
}

// FrameConsumer delivers the frames of watched leaderboards to the callback
// it was made with, in publishing order per leaderboard. The callback is
// called from one goroutine and must not block for long.
type FrameConsumer interface {
	// Watch starts delivering board's frames: every frame published after
	// Watch returned is delivered (frames from before may be too). Watching a
	// board twice is the same as once.
	Watch(ctx context.Context, board string) error
	// Unwatch stops delivering board's frames (a few already fetched may
	// still arrive).
	Unwatch(board string)
	Close()
}

// HandlerFuncs adapts functions to an EventHandler; nil ones do nothing.
type HandlerFuncs struct {
	OnAssigned func(ctx context.Context, partitions []int32)
	OnRevoked  func(ctx context.Context, partitions []int32)
	OnEvents   func(ctx context.Context, partition int32, events []Event) error
}

func (h HandlerFuncs) Assigned(ctx context.Context, p []int32) {
	if h.OnAssigned != nil {
		h.OnAssigned(ctx, p)
	}
}

func (h HandlerFuncs) Revoked(ctx context.Context, p []int32) {
	if h.OnRevoked != nil {
		h.OnRevoked(ctx, p)
	}
}

func (h HandlerFuncs) Handle(ctx context.Context, partition int32, events []Event) error {
	if h.OnEvents != nil {
		return h.OnEvents(ctx, partition, events)
	}
	return nil
}

// Errors.
var (
	ErrClosed     = errors.New("bus: closed")
	ErrRunTwice   = errors.New("bus: consumer Run called twice")
	ErrBadBoardID = errors.New("bus: leaderboard id empty or too long")
)

package fanout

import (
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/wire"
)

// Frame is one server message. Its JSON is Prefix followed by Body: Body is
// encoded once per window change and shared by every subscriber of the
// segment; Prefix names the subscription (`{"type":"update","id":"a"`) and is
// built once per subscription. Transports write both parts without joining
// them (a vectored WebSocket write, or two writes into an SSE buffer).
type Frame struct {
	Type    string // snapshot, update, status, subscribed, resync, error, pong
	Version uint64 // for SSE ids; 0 when not meaningful
	// PrevVersion is the version an update applies to (updates only).
	PrevVersion uint64
	// Sub is the subscription an update of a Hub was sent to (nil for other
	// frames, and for a Remote's): a sink that falls behind may ask the Hub
	// to merge its waiting updates of Sub into one (Hub.Conflate).
	Sub *Subscription
	// Unchanged marks a resume's catch-up update after which the window is
	// as it was at PrevVersion (every change since was outside it): a long
	// poll waits on for a change instead of answering with it.
	Unchanged bool
	Prefix    []byte
	Body      []byte
}

// Len is the size of the frame's JSON.
func (f Frame) Len() int { return len(f.Prefix) + len(f.Body) }

// AppendJSON appends the frame's JSON to b.
func (f Frame) AppendJSON(b []byte) []byte { return append(append(b, f.Prefix...), f.Body...) }

// Prefix is the per-subscription start of a frame of type typ for
// subscription id: every subscriber of a segment gets the same Body after
// its own Prefix.
func Prefix(typ, id string) []byte {
	b := make([]byte, 0, 20+len(typ)+len(id))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","id":`...)
	return wire.ID(b, id)
}

// listState is a top or around window at one version.
type listState struct {
	offset  int64 // first rank - 1
	entries []store.Entry
}

// partState is a participant window at one version; nil entry: not ranked.
type partState struct {
	entry *store.Entry
}

func appendParticipant(b []byte, e *store.Entry, prev *store.Entry, withPrev bool) []byte {
	if e == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"rank":`...)
	b = wire.Int(b, e.Rank)
	if withPrev {
		b = append(b, `,"previous_rank":`...)
		if prev != nil {
			b = wire.Int(b, prev.Rank)
		} else {
			b = append(b, "null"...)
		}
	}
	b = append(b, `,"participant_id":`...)
	b = wire.ID(b, e.ParticipantID)
	b = append(b, `,"score":`...)
	b = wire.Uint(b, e.Score)
	if withPrev {
		b = append(b, `,"previous_score":`...)
		if prev != nil {
			b = wire.Uint(b, prev.Score)
		} else {
			b = append(b, "null"...)
		}
	}
	b = append(b, `,"achieved_at":`...)
	b = wire.Int(b, e.AchievedAt)
	if e.DisplayName != "" {
		b = append(b, `,"display_name":`...)
		b = wire.String(b, e.DisplayName)
	}
	return append(b, '}')
}

// listSnapshotBody: ,"version":V,"epoch":E,"offset":O,"size":S,"entries":[...]}
// The epoch is in every snapshot so that SSE and long-poll clients, which get
// no "subscribed" message, can resume.
func listSnapshotBody(version uint64, epoch string, s *listState) []byte {
	b := make([]byte, 0, 64+80*len(s.entries))
	b = append(b, `,"version":`...)
	b = wire.Uint(b, version)
	b = append(b, `,"epoch":`...)
	b = wire.ID(b, epoch)
	b = append(b, `,"offset":`...)
	b = wire.Int(b, s.offset)
	b = append(b, `,"size":`...)
	b = wire.Int(b, int64(len(s.entries)))
	b = append(b, `,"entries":`...)
	b = wire.Entries(b, s.entries)
	return append(b, '}')
}

// listUpdateBody: ,"prev_version":P,"version":V,"offset":O,"size":S,"changes":[...]}
func listUpdateBody(prev, version uint64, s *listState, changes []store.Entry) []byte {
	b := make([]byte, 0, 80+80*len(changes))
	b = append(b, `,"prev_version":`...)
	b = wire.Uint(b, prev)
	b = append(b, `,"version":`...)
	b = wire.Uint(b, version)
	b = append(b, `,"offset":`...)
	b = wire.Int(b, s.offset)
	b = append(b, `,"size":`...)
	b = wire.Int(b, int64(len(s.entries)))
	b = append(b, `,"changes":`...)
	b = wire.Entries(b, changes)
	return append(b, '}')
}

// participantSnapshotBody: ,"version":V,"epoch":E,"participant":{...}|null}
func participantSnapshotBody(version uint64, epoch string, s *partState) []byte {
	b := make([]byte, 0, 160)
	b = append(b, `,"version":`...)
	b = wire.Uint(b, version)
	b = append(b, `,"epoch":`...)
	b = wire.ID(b, epoch)
	b = append(b, `,"participant":`...)
	b = appendParticipant(b, s.entry, nil, false)
	return append(b, '}')
}

// participantUpdateBody: ,"prev_version":P,"version":V,"participant":{... previous_*}|null}
// prev is the participant at prev_version (nil: not ranked then, or unknown on a resume).
func participantUpdateBody(prevVersion, version uint64, s *partState, prev *store.Entry) []byte {
	b := make([]byte, 0, 200)
	b = append(b, `,"prev_version":`...)
	b = wire.Uint(b, prevVersion)
	b = append(b, `,"version":`...)
	b = wire.Uint(b, version)
	b = append(b, `,"participant":`...)
	b = appendParticipant(b, s.entry, prev, true)
	return append(b, '}')
}

// subscribedFrame is the whole confirmation message.
// SubscribedFrame is the acknowledgement of a subscription.
func SubscribedFrame(id, kind string, version uint64, epoch string) Frame {
	b := Prefix("subscribed", id)
	b = append(b, `,"kind":"`...)
	b = append(b, kind...)
	b = append(b, `","version":`...)
	b = wire.Uint(b, version)
	b = append(b, `,"epoch":`...)
	b = wire.ID(b, epoch)
	b = append(b, '}')
	return Frame{Type: "subscribed", Version: version, Body: b}
}

// StatusFrame is a leaderboard status change.
func StatusFrame(status string, version uint64) Frame {
	b := make([]byte, 0, 64)
	b = append(b, `{"type":"status","status":"`...)
	b = append(b, status...)
	b = append(b, `","version":`...)
	b = wire.Uint(b, version)
	b = append(b, '}')
	return Frame{Type: "status", Version: version, Body: b}
}

// ResyncFrame tells a client that subscription id lost its backlog.
func ResyncFrame(id, reason string) Frame {
	b := Prefix("resync", id)
	b = append(b, `,"reason":`...)
	b = wire.String(b, reason)
	b = append(b, '}')
	return Frame{Type: "resync", Body: b}
}

// ErrorFrame is an error about the connection (id "") or one subscription.
func ErrorFrame(id, code, message string) Frame {
	b := make([]byte, 0, 64+len(message))
	b = append(b, `{"type":"error"`...)
	if id != "" {
		b = append(b, `,"id":`...)
		b = wire.String(b, id)
	}
	b = append(b, `,"code":`...)
	b = wire.ID(b, code)
	b = append(b, `,"message":`...)
	b = wire.String(b, message)
	b = append(b, '}')
	return Frame{Type: "error", Body: b}
}

// PongFrame answers a client's {"type":"ping"}.
var PongFrame = Frame{Type: "pong", Body: []byte(`{"type":"pong"}`)}

// Package client is the Go client of the real-time leaderboard service.
//
// # REST
//
// [New] returns a [Client] for a base URL. Its methods map one to one onto
// the v1 API: leaderboards ([Client.CreateLeaderboard],
// [Client.GetLeaderboard], [Client.ListLeaderboards],
// [Client.UpdateLeaderboard], [Client.Finalize],
// [Client.RemoveParticipant]), submissions ([Client.SubmitScore],
// [Client.SubmitScores]) and reads ([Client.Rankings], [Client.Around],
// [Client.Participant]). Scores are uint64, times of entries Unix
// milliseconds, leaderboard times RFC 3339 strings. Every error answer of
// the server is an [*APIError] carrying the HTTP status, the error code, the
// message and Retry-After:
//
//	_, err := c.SubmitScore(ctx, "cup", client.Score{ParticipantID: "p1", Score: 1500})
//	var apiErr *client.APIError
//	if errors.As(err, &apiErr) && apiErr.Code == "rate_limited" {
//		time.Sleep(apiErr.RetryAfter)
//	}
//
// [WithToken] sends "Authorization: Bearer <token>" on every request, live
// ones included; [WithHTTPClient] sets the HTTP client.
//
// # Live windows
//
// [Client.WatchTop], [Client.WatchParticipant] and [Client.WatchAround]
// return a [Watcher] that keeps a consistent local copy of one window of a
// leaderboard, following the protocol of the server's docs/LIVE.md:
//
//   - It subscribes over WebSocket (/v1/leaderboards/{id}/subscribe), applies
//     the snapshot, then each update: entries are keyed by rank, changes
//     overwrite their rank, offset and size are taken from the message, and
//     ranks outside offset+1 .. offset+size are dropped. [Watcher.State]
//     returns a copy that is exactly the rankings page at its version.
//   - Every update's prev_version must equal the version last applied. When
//     it does not, the watcher subscribes again without since_version and
//     waits for the snapshot (updates still in flight are dropped). After a
//     "resync" it only waits for the snapshot the server sends.
//   - After any disconnection it reconnects with exponential backoff and full
//     jitter ([WithBackoff]) and resumes with since_version and epoch of the
//     last message applied; the server answers with one catch-up update, or a
//     snapshot when it cannot.
//   - When WebSocket cannot be used (the upgrade is answered with anything
//     but 101, or the first connection attempt fails) it falls back to
//     Server-Sent Events (/stream, resuming with Last-Event-ID and epoch=),
//     and when SSE fails the same way, to long polling (/updates with
//     since_version, epoch and timeout_ms). On a fallback it tries WebSocket
//     again every 30 s ([WithWebSocketRetry]). A 429 rate_limited answer
//     (too many upgrades or streams from one address) is no refusal: the
//     watcher waits its Retry-After (at most a minute), plus the backoff,
//     and tries the same transport again. [WithTransport] pins one transport. All three feed
//     the same apply code.
//   - SSE and long polls carry no "subscribed" message, and the contract
//     does not require a snapshot to name its epoch (this server's snapshots
//     do, and the watcher takes the epoch a message names). Before an SSE
//     connection, and before a long poll that follows a snapshot of unknown
//     epoch, the watcher reads the current epoch from
//     GET /v1/leaderboards/{id}/rankings?limit=1. Read first, it
//     can only be older than the snapshot's, which costs at most one more
//     snapshot, never a wrong update.
//   - An unknown leaderboard (404 leaderboard_not_found on a live route or an
//     "error" message), and invalid_argument, unauthenticated or
//     permission_denied answers, end the watcher: [Watcher.Err] returns the
//     [*APIError] and the change channel is closed.
//
// Changes are announced on [Watcher.Changes], a channel with a buffer of one
// that the watcher never blocks on: a slow consumer sees one pending value
// however many changes happened, and reads the latest state with
// [Watcher.State]. [Watcher.WaitFor] waits for a condition on the state
// without consuming that channel.
//
//	w := c.WatchTop(ctx, "cup", 10)
//	defer w.Close()
//	for range w.Changes() {
//		s := w.State()
//		if s.Ready {
//			render(s.Entries)
//		}
//	}
//	if err := w.Err(); err != nil {
//		log.Print(err)
//	}
package client

package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/wire"
)

// connect is the connection router: which gateway a new viewer of the
// leaderboard should open its WebSocket on.
func (a *API) connect(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "leaderboard id")
	if err != nil {
		return err
	}
	if a.opts.Connect == nil {
		return &board.Error{Code: board.CodeUnavailable, Message: "this server has no connection router", RetryAfter: time.Minute}
	}
	if _, err := a.svc.Version(r.Context(), id); err != nil {
		return err
	}
	gwID, base, err := a.opts.Connect(r.Context(), id)
	if err != nil {
		var be *board.Error
		if errors.As(err, &be) {
			return be
		}
		return &board.Error{Code: board.CodeUnavailable, Message: "no gateway can take a viewer now: " + err.Error(), RetryAfter: time.Second}
	}
	b := make([]byte, 0, 160)
	b = append(b, `{"leaderboard_id":`...)
	b = wire.ID(b, id)
	b = append(b, `,"gateway_id":`...)
	b = wire.String(b, gwID)
	b = append(b, `,"url":`...)
	b = wire.String(b, base+"/v1/leaderboards/"+id+"/subscribe")
	b = append(b, '}')
	writeJSONBytes(w, http.StatusOK, b)
	return nil
}

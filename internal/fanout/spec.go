package fanout

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is what a subscription watches.
type Kind uint8

const (
	Top         Kind = iota // the first Limit ranks
	Participant             // one participant
	Around                  // Radius ranks on each side of one participant
)

func (k Kind) String() string {
	switch k {
	case Top:
		return "top"
	case Participant:
		return "participant"
	}
	return "around"
}

// ParseKind maps the protocol's kind names.
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "top":
		return Top, true
	case "participant":
		return Participant, true
	case "around":
		return Around, true
	}
	return 0, false
}

// Limits of a Spec.
const (
	MaxTopLimit     = 1000
	DefaultTopLimit = 100
	MaxRadius       = 50
	DefaultRadius   = 5
)

// Spec names a window. Two subscriptions with equal specs share a segment.
type Spec struct {
	Kind          Kind
	Limit         int    // Top
	ParticipantID string // Participant, Around
	Radius        int    // Around
}

// Key names the segment this spec describes: "t:<limit>", "p:<participant>"
// or "a:<radius>:<participant>" (ParseSpecKey reads it back). Subscribers
// with equal keys share a segment; the subscription registry stores keys.
func (s Spec) Key() string {
	switch s.Kind {
	case Top:
		return "t:" + strconv.Itoa(s.Limit)
	case Participant:
		return "p:" + s.ParticipantID
	}
	return "a:" + strconv.Itoa(s.Radius) + ":" + s.ParticipantID
}

// Validate checks the parameters of a spec (ids are validated by the caller).
func (s Spec) Validate() error {
	switch s.Kind {
	case Top:
		if s.Limit < 1 || s.Limit > MaxTopLimit {
			return fmt.Errorf("limit must be 1 to %d", MaxTopLimit)
		}
	case Participant, Around:
		if s.ParticipantID == "" {
			return fmt.Errorf("participant_id is required for kind %s", s.Kind)
		}
		if s.Kind == Around && (s.Radius < 0 || s.Radius > MaxRadius) {
			return fmt.Errorf("radius must be 0 to %d", MaxRadius)
		}
	default:
		return fmt.Errorf("unknown kind")
	}
	return nil
}

// ParseSpecKey reads a segment key written by Spec.Key back into a spec,
// and validates it.
func ParseSpecKey(key string) (Spec, error) {
	bad := fmt.Errorf("bad segment key %q", key)
	kind, rest, ok := strings.Cut(key, ":")
	if !ok || rest == "" {
		return Spec{}, bad
	}
	var s Spec
	switch kind {
	case "t":
		n, err := strconv.Atoi(rest)
		if err != nil {
			return Spec{}, bad
		}
		s = Spec{Kind: Top, Limit: n}
	case "p":
		s = Spec{Kind: Participant, ParticipantID: rest}
	case "a":
		r, pid, ok := strings.Cut(rest, ":")
		n, err := strconv.Atoi(r)
		if !ok || err != nil || pid == "" {
			return Spec{}, bad
		}
		s = Spec{Kind: Around, Radius: n, ParticipantID: pid}
	default:
		return Spec{}, bad
	}
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	if s.ParticipantID != "" && !validParticipant(s.ParticipantID) {
		return Spec{}, bad
	}
	return s, nil
}

// validParticipant: 1 to 128 characters of A-Z a-z 0-9 _ . : - (the API's ids).
func validParticipant(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

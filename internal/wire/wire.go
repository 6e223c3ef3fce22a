// Package wire appends the JSON of the API's messages by hand: submission
// results, ranking entries and pages, errors, and the live-update frames.
// Their shape is fixed and hot, and ids need no escaping (they are limited to
// A-Z a-z 0-9 _ . : -); tests compare every appender with encoding/json.
package wire

import (
	"strconv"
	"unicode/utf8"

	"github.com/lbhq/leaderboard/internal/store"
)

// Key appends ,"key": (without the comma when first).
func Key(b []byte, comma bool, key string) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

// ID appends an identifier as a JSON string; ids never need escaping.
func ID(b []byte, id string) []byte {
	b = append(b, '"')
	b = append(b, id...)
	return append(b, '"')
}

// Uint appends v.
func Uint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

// Int appends v.
func Int(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

// Entry appends one ranking entry object.
func Entry(b []byte, e *store.Entry) []byte {
	b = append(b, `{"rank":`...)
	b = Int(b, e.Rank)
	b = append(b, `,"participant_id":`...)
	b = ID(b, e.ParticipantID)
	b = append(b, `,"score":`...)
	b = Uint(b, e.Score)
	b = append(b, `,"achieved_at":`...)
	b = Int(b, e.AchievedAt)
	if e.DisplayName != "" {
		b = append(b, `,"display_name":`...)
		b = String(b, e.DisplayName)
	}
	return append(b, '}')
}

// Entries appends a JSON array of entries.
func Entries(b []byte, es []store.Entry) []byte {
	b = append(b, '[')
	for i := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = Entry(b, &es[i])
	}
	return append(b, ']')
}

// Error appends the contract's error object.
func Error(b []byte, code, message string) []byte {
	b = append(b, `{"error":{"code":`...)
	b = ID(b, code)
	b = append(b, `,"message":`...)
	b = String(b, message)
	return append(b, `}}`...)
}

const hexDigits = "0123456789abcdef"

// String appends s as a JSON string, escaping what JSON requires and the
// HTML-sensitive characters, like encoding/json: also U+2028 and U+2029
// (line terminators in JavaScript before ES2019, so a body pasted into a
// script stays one string), and each byte of invalid UTF-8 as U+FFFD (the
// JSON text must be UTF-8). Display names are free text.
func String(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				b = append(b, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			default:
				b = append(b, s[i:i+size]...)
			}
			i += size - 1
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

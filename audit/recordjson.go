package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecord appends rec's JSON to dst: byte for byte what
// encoding/json.Marshal produces for a Record (fields in declaration order,
// omitempty and omitzero as tagged, strings escaped as Marshal escapes them,
// HTML characters included), without reflection. The writer encodes every
// record, so this is its largest CPU cost after the database; TestRecordJSON
// and FuzzRecordJSON hold it to encoding/json's output, field by field.
func appendRecord(dst []byte, rec *Record) ([]byte, error) {
	var err error
	b := append(dst, `{"decision_id":`...)
	b = appendJSONString(b, rec.DecisionID)
	b = append(b, `,"time":`...)
	if b, err = appendJSONTime(b, rec.Time); err != nil {
		return dst, err
	}
	if rec.Dev {
		b = append(b, `,"dev":true`...)
	}
	b = appendOptString(b, `,"user":`, rec.User)
	b = appendOptString(b, `,"agent":`, rec.Agent)
	b = appendOptString(b, `,"tenant":`, rec.Tenant)
	b = appendOptStrings(b, `,"actors":`, rec.Actors)
	b = appendOptString(b, `,"issuer":`, rec.Issuer)
	b = appendOptString(b, `,"spiffe_id":`, rec.SPIFFEID)
	b = appendOptString(b, `,"inbound_credential":`, rec.InboundCredential)

	r := &rec.Request
	b = append(b, `,"request":{"protocol":`...)
	b = appendJSONString(b, r.Protocol)
	b = appendOptString(b, `,"method":`, r.Method)
	b = appendOptString(b, `,"host":`, r.Host)
	b = appendOptString(b, `,"path":`, r.Path)
	b = appendOptString(b, `,"mcp_method":`, r.MCPMethod)
	b = appendOptString(b, `,"mcp_name":`, r.MCPName)
	b = appendOptString(b, `,"arguments_sha256":`, r.ArgumentsDigest)
	b = appendOptString(b, `,"envoy_request_id":`, r.EnvoyRequestID)
	b = appendOptString(b, `,"resource":`, r.Resource)
	b = append(b, '}')

	b = appendOptString(b, `,"policy_revision":`, rec.PolicyRevision)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, rec.Outcome)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, rec.Reason)

	if a := rec.Approval; a != nil {
		b = append(b, `,"approval":{"id":`...)
		b = appendJSONString(b, a.ID)
		b = appendOptString(b, `,"approver":`, a.Approver)
		b = append(b, `,"outcome":`...)
		b = appendJSONString(b, a.Outcome)
		if !a.Requested.IsZero() {
			b = append(b, `,"requested_at":`...)
			if b, err = appendJSONTime(b, a.Requested); err != nil {
				return dst, err
			}
		}
		if !a.Decided.IsZero() {
			b = append(b, `,"decided_at":`...)
			if b, err = appendJSONTime(b, a.Decided); err != nil {
				return dst, err
			}
		}
		b = append(b, '}')
	}
	if t := rec.Token; t != nil {
		b = append(b, `,"token":{"jti":`...)
		b = appendJSONString(b, t.JTI)
		b = append(b, `,"profile":`...)
		b = appendJSONString(b, t.Profile)
		b = append(b, `,"audience":`...)
		b = appendJSONString(b, t.Audience)
		b = appendOptStrings(b, `,"scopes":`, t.Scopes)
		b = append(b, `,"expires_at":`...)
		if b, err = appendJSONTime(b, t.ExpiresAt); err != nil {
			return dst, err
		}
		b = append(b, `,"kid":`...)
		b = appendJSONString(b, t.KeyID)
		if t.Reused {
			b = append(b, `,"reused":true`...)
		}
		b = append(b, '}')
	}
	if c := rec.Credential; c != nil {
		b = append(b, `,"credential":{"backend":`...)
		b = appendJSONString(b, c.Backend)
		b = append(b, `,"ref":`...)
		b = appendJSONString(b, c.Ref)
		b = appendOptString(b, `,"version":`, c.Version)
		b = appendOptString(b, `,"error":`, c.Error)
		b = append(b, '}')
	}
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, rec.LatencyMicros, 10)
	return append(b, '}'), nil
}

// appendOptString appends key and s unless s is empty (omitempty).
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

// appendOptStrings appends key and ss as an array unless ss is empty
// (omitempty).
func appendOptStrings(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, key...)
	for i, s := range ss {
		if i == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONTime appends t as time.Time.MarshalJSON does: quoted RFC 3339
// with nanoseconds, and the same error for a time RFC 3339 cannot hold.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes a JSON string holds as they are: printable,
// and none of '"', '\\', '<', '>' and '&'.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// appendJSONString appends s quoted and escaped as encoding/json escapes
// strings by default: `"` and `\`, the control characters (\b \f \n \r \t by
// name, the rest as \u00XX), '<', '>' and '&' as \u00XX, U+2028 and U+2029 as
// \u2028 and \u2029, and each byte of invalid UTF-8 as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

package audit

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// hostile holds every byte class the JSON string escaper treats apart:
// quotes, backslash, control characters named and unnamed, HTML characters,
// DEL, multi-byte UTF-8, U+2028, U+2029, and invalid UTF-8.
const hostile = "a\"b\\c\b\f\n\r\t\x00\x1f<>&\x7fé€😀\u2028\u2029\xff\xc3(\xe2\x82"

// filled returns v with every field set to a non-zero value, recursing
// through structs, pointers and slices, so that a field appendRecord does
// not write shows up as a difference from encoding/json.
func filled(t *testing.T, typ reflect.Type, s string) reflect.Value {
	t.Helper()
	if typ == reflect.TypeFor[time.Time]() {
		return reflect.ValueOf(time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("", 5*3600+30*60)))
	}
	v := reflect.New(typ).Elem()
	switch typ.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(-1234567)
	case reflect.Pointer:
		v.Set(filled(t, typ.Elem(), s).Addr())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(typ, 2, 2))
		for i := range 2 {
			v.Index(i).Set(filled(t, typ.Elem(), s+string(rune('0'+i))))
		}
	case reflect.Struct:
		for i := range typ.NumField() {
			v.Field(i).Set(filled(t, typ.Field(i).Type, s+typ.Field(i).Name))
		}
	default:
		t.Fatalf("filled: no rule for %s; teach appendRecord and this test the new field", typ)
	}
	return v
}

func TestRecordJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	all := filled(t, reflect.TypeFor[Record](), hostile).Interface().(Record)
	plain := filled(t, reflect.TypeFor[Record](), "x").Interface().(Record)
	tests := []struct {
		name string
		rec  Record
	}{
		{name: "zero", rec: Record{}},
		{name: "every field, hostile strings", rec: all},
		{name: "every field, plain strings", rec: plain},
		{name: "typical", rec: Record{
			DecisionID: "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Time: at, User: "user-7", Agent: "agent-3",
			Request: Request{Protocol: "grpc", MCPMethod: "tools/call", MCPName: "search_issues"},
			Outcome: "allow", Status: 200, Reason: "tool allowed for agent", LatencyMicros: 180,
		}},
		{name: "empty slices and zero approval times", rec: Record{
			DecisionID: "d", Time: at.Round(time.Second), Actors: []string{}, Status: -1,
			Approval: &Approval{ID: "a"}, Token: &Token{Scopes: []string{""}}, Credential: &Credential{},
		}},
		{name: "local zone, no fraction", rec: Record{
			DecisionID: "d", Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.FixedZone("X", -(23*3600+59*60))),
			Token: &Token{ExpiresAt: time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(&tt.rec)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			got, err := appendRecord([]byte("prefix"), &tt.rec)
			if err != nil {
				t.Fatalf("appendRecord: %v", err)
			}
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Errorf("appendRecord differs from encoding/json\ngot:  %s\nwant: prefix%s", got, want)
			}
		})
	}
}

func TestRecordJSONTimeError(t *testing.T) {
	for _, rec := range []Record{
		{DecisionID: "d", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{DecisionID: "d", Approval: &Approval{Decided: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{DecisionID: "d", Token: &Token{ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))}},
	} {
		if _, err := json.Marshal(&rec); err == nil {
			t.Fatalf("json.Marshal accepted %+v", rec)
		}
		got, err := appendRecord([]byte("prefix"), &rec)
		if err == nil {
			t.Errorf("appendRecord(%+v) = %s, want an error as encoding/json gives", rec, got)
		}
		if string(got) != "prefix" {
			t.Errorf("appendRecord failed but returned %q, want the buffer unchanged", got)
		}
	}
}

// FuzzRecordJSON holds appendRecord to encoding/json for any strings, times
// and numbers: agent names, tool names, paths and reasons come from requests.
func FuzzRecordJSON(f *testing.F) {
	f.Add("d-1", "user-7", "tool allowed", int64(1772366400), int64(123456789), 0, int64(200), uint8(0))
	f.Add(hostile, "\u2028<script>", "\xff\xfe", int64(-62135596800), int64(0), -3600, int64(-1), uint8(0xff))
	f.Fuzz(func(t *testing.T, a, b, c string, sec, nsec int64, offset int, n int64, flags uint8) {
		at := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		strs := []string{a, b, c}
		rec := Record{
			DecisionID: a, Time: at, Dev: flags&1 != 0,
			User: b, Agent: c, Tenant: a, Issuer: b, SPIFFEID: c, InboundCredential: a,
			Request: Request{Protocol: b, Method: c, Host: a, Path: b, MCPMethod: c, MCPName: a,
				ArgumentsDigest: b, EnvoyRequestID: c, Resource: a},
			PolicyRevision: b, Outcome: c, Status: int(n), Reason: a, LatencyMicros: n,
		}
		if flags&2 != 0 {
			rec.Actors = strs
		}
		if flags&4 != 0 {
			rec.Approval = &Approval{ID: a, Approver: b, Outcome: c, Requested: at}
			if flags&32 != 0 {
				rec.Approval.Decided = at.Add(time.Duration(n))
			}
		}
		if flags&8 != 0 {
			rec.Token = &Token{JTI: a, Profile: b, Audience: c, Scopes: strs[:flags>>6], ExpiresAt: at, KeyID: a, Reused: flags&1 == 0}
		}
		if flags&16 != 0 {
			rec.Credential = &Credential{Backend: a, Ref: b, Version: c, Error: a}
		}
		want, wantErr := json.Marshal(&rec)
		got, err := appendRecord(nil, &rec)
		switch {
		case wantErr != nil && err == nil:
			t.Fatalf("encoding/json fails (%v), appendRecord gave %s", wantErr, got)
		case wantErr == nil && err != nil:
			t.Fatalf("appendRecord: %v; encoding/json gave %s", err, want)
		case !bytes.Equal(got, want):
			t.Fatalf("appendRecord differs from encoding/json\ngot:  %q\nwant: %q", got, want)
		}
	})
}

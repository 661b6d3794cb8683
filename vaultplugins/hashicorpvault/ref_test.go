package hashicorpvault_test

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/writ-dev/writ/vaultplugins/hashicorpvault"
)

type refCase struct {
	in      string
	want    hashicorpvault.Ref
	wantErr bool
}

func refCases(t testing.TB) []refCase {
	t.Helper()
	f, err := os.Open("testdata/refs.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []refCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) == 2 && cols[1] == "ERR" {
			cases = append(cases, refCase{in: cols[0], wantErr: true})
			continue
		}
		if len(cols) != 4 {
			t.Fatalf("testdata/refs.txt: bad line %q", line)
		}
		v, _ := strconv.Atoi(cols[3])
		cases = append(cases, refCase{in: cols[0], want: hashicorpvault.Ref{Path: cols[1], Field: cols[2], Version: v}})
	}
	return cases
}

func TestParseRef(t *testing.T) {
	cases := append(refCases(t), refCase{in: strings.Repeat("a", hashicorpvault.MaxRefLen+1), wantErr: true}, refCase{in: "a\x00b", wantErr: true})
	for _, tt := range cases {
		got, err := hashicorpvault.ParseRef(tt.in)
		if tt.wantErr {
			if !errors.Is(err, hashicorpvault.ErrInvalidRef) {
				t.Errorf("ParseRef(%q) = %+v, %v; want ErrInvalidRef", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

// FuzzParseRef: whatever parses round-trips through String, and never yields
// a path that could leave the mount.
func FuzzParseRef(f *testing.F) {
	for _, c := range refCases(f) {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := hashicorpvault.ParseRef(s)
		if err != nil {
			if !errors.Is(err, hashicorpvault.ErrInvalidRef) {
				t.Fatalf("error %v is not ErrInvalidRef", err)
			}
			return
		}
		if r.String() != s {
			t.Fatalf("String() = %q, want %q", r.String(), s)
		}
		again, err := hashicorpvault.ParseRef(r.String())
		if err != nil || again != r {
			t.Fatalf("re-parse = %+v, %v", again, err)
		}
		for seg := range strings.SplitSeq(r.Path, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("path %q has segment %q", r.Path, seg)
			}
		}
		if strings.ContainsAny(s, "?%\\ \r\n\t") || r.Version < 0 {
			t.Fatalf("accepted %q", s)
		}
	})
}

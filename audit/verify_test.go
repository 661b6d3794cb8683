package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/store"
)

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  string
		rewrite int64 // seq whose record is replaced with its hash recomputed
		want    audit.VerifyResult
	}{
		{
			name: "untouched",
			want: audit.VerifyResult{Records: 6, OK: true},
		},
		{
			name:   "record edited",
			tamper: `UPDATE evidence SET record = replace(record, '"outcome":"allow"', '"outcome":"deny"') WHERE seq = 3`,
			want:   audit.VerifyResult{Records: 6, FirstBroken: 3, Problem: "hash mismatch: record altered"},
		},
		{
			name:   "prev_hash edited",
			tamper: `UPDATE evidence SET prev_hash = (SELECT hash FROM evidence WHERE seq = 1) WHERE seq = 4`,
			want:   audit.VerifyResult{Records: 6, FirstBroken: 4, Problem: "prev_hash does not match the previous record's hash"},
		},
		{
			name:   "middle row deleted",
			tamper: `DELETE FROM evidence WHERE seq = 3`,
			want:   audit.VerifyResult{Records: 5, FirstBroken: 4, Problem: "seq gap after 2"},
		},
		{
			name:   "first row deleted",
			tamper: `DELETE FROM evidence WHERE seq = 1`,
			want:   audit.VerifyResult{Records: 5, FirstBroken: 2, Problem: "seq gap after 0"},
		},
		{
			name:   "own hash edited",
			tamper: `UPDATE evidence SET hash = (SELECT hash FROM evidence WHERE seq = 1) WHERE seq = 6`,
			want:   audit.VerifyResult{Records: 6, FirstBroken: 6, Problem: "hash mismatch: record altered"},
		},
		{
			name:    "record and hash rewritten together",
			rewrite: 2,
			want:    audit.VerifyResult{Records: 6, FirstBroken: 3, Problem: "prev_hash does not match the previous record's hash"},
		},
		{
			name:   "decision_id column edited",
			tamper: `UPDATE evidence SET decision_id = 'other' WHERE seq = 5`,
			want:   audit.VerifyResult{Records: 6, FirstBroken: 5, Problem: "decision_id column does not match the record"},
		},
		{
			name:   "hash truncated",
			tamper: `UPDATE evidence SET hash = substr(hash, 1, 31) WHERE seq = 2`,
			want:   audit.VerifyResult{Records: 6, FirstBroken: 2, Problem: "prev_hash or hash is not 32 bytes"},
		},
		{
			name:   "hash stored as hex text",
			tamper: `UPDATE evidence SET hash = hex(hash) WHERE seq = 4`,
			want:   audit.VerifyResult{Records: 6, FirstBroken: 4, Problem: "prev_hash or hash is not 32 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openDB(t)
			writeRecords(t, db, 0, 6)
			if tt.tamper != "" {
				exec(t, db, tt.tamper)
			}
			if tt.rewrite != 0 {
				rewrite(t, db, tt.rewrite)
			}
			got, err := audit.Verify(t.Context(), db)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyEmpty(t *testing.T) {
	db, _ := openDB(t)
	got, err := audit.Verify(t.Context(), db)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if diff := cmp.Diff(audit.VerifyResult{OK: true}, got); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
}

// rewrite replaces one record the way a careful forger would: the record and
// its own hash agree, so only the next link can show it.
func rewrite(t *testing.T, db *store.DB, seq int64) {
	t.Helper()
	var (
		prev []byte
		body string
	)
	if err := db.QueryRowContext(t.Context(), `SELECT prev_hash, record FROM evidence WHERE seq = ?`, seq).Scan(&prev, &body); err != nil {
		t.Fatalf("read seq %d: %v", seq, err)
	}
	forged := strings.Replace(body, `"outcome":"allow"`, `"outcome":"deny"`, 1)
	sum := sha256.Sum256([]byte(hex.EncodeToString(prev) + "\n" + forged))
	if _, err := db.ExecContext(t.Context(), `UPDATE evidence SET record = ?, hash = ? WHERE seq = ?`, forged, sum[:], seq); err != nil {
		t.Fatalf("rewrite seq %d: %v", seq, err)
	}
}

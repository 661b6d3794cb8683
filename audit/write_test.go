package audit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/audit"
)

// TestBatchSizes writes batches of sizes that take every INSERT shape: a
// full statement, full ones plus a rest, and rests of each power of two.
func TestBatchSizes(t *testing.T) {
	for _, size := range []int{1, 2, 7, 255, 256, 257, 600} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			db, _ := openDB(t)
			l := openLog(t, db, audit.Options{BatchSize: size, FlushInterval: time.Hour})
			events := watchBatches(l)
			// Two batches, the second part full, so the next one continues
			// the chain a batch left.
			n := size + size/2 + 1
			want := records(0, n)
			appendAll(t, l, want...)
			if err := l.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for i, wantN := range []int{size, n - size} {
				if ev := <-events; ev.n != wantN || ev.err != nil {
					t.Fatalf("batch %d: %d records, err %v; want %d, nil", i, ev.n, ev.err, wantN)
				}
			}
			res, err := audit.Verify(t.Context(), db)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(audit.VerifyResult{Records: n, OK: true}, res); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
			got, err := audit.Tail(t.Context(), db, n)
			if err != nil {
				t.Fatalf("Tail: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records read back (-want +got):\n%s", diff)
			}
			var prev string
			for i, rec := range want {
				_, st, err := audit.Find(t.Context(), db, rec.DecisionID)
				if err != nil {
					t.Fatalf("Find(%s): %v", rec.DecisionID, err)
				}
				if st.Seq != int64(i+1) || (i > 0 && st.PrevHash != prev) {
					t.Fatalf("Find(%s) = %+v, want seq %d linked to %s", rec.DecisionID, st, i+1, prev)
				}
				prev = st.Hash
			}
		})
	}
}

// TestStoredTypes pins the column types: the record as TEXT (so SQLite's
// JSON functions read it), the hashes as 32-byte BLOBs.
func TestStoredTypes(t *testing.T) {
	db, _ := openDB(t)
	writeRecords(t, db, 0, 3)
	rows, err := db.QueryContext(t.Context(),
		`SELECT typeof(record), json_extract(record, '$.decision_id'), typeof(prev_hash), length(prev_hash), typeof(hash), length(hash) FROM evidence ORDER BY seq`)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	type row struct {
		RecordType, ID, PrevType string
		PrevLen                  int
		HashType                 string
		HashLen                  int
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.RecordType, &r.ID, &r.PrevType, &r.PrevLen, &r.HashType, &r.HashLen); err != nil {
			t.Fatalf("scan: %v", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	var want []row
	for i := range 3 {
		want = append(want, row{"text", record(i).DecisionID, "blob", 32, "blob", 32})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored types (-want +got):\n%s", diff)
	}
}

package sqlitestore

import (
	"path/filepath"
	"testing"
)

// TestStartWriteback runs the real sync_file_range on the store's WAL:
// accepted on an open log, refused once the log is closed.
func TestStartWriteback(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "hookrelay.db"))
	mustAccept(t, s, testEvent("orders", "k", 1, base, "crm"))
	if err := s.wal.startWriteback(); err != nil {
		t.Fatalf("writeback of the WAL: %v", err)
	}
	mustClose(t, s)
	if err := s.wal.startWriteback(); err == nil {
		t.Fatal("writeback of a closed WAL succeeded")
	}
}

//go:build !linux

package sqlitestore

// startWriteback does nothing where sync_file_range does not exist: the
// flush writes the pages itself (see writeback_linux.go).
func (w *walSyncer) startWriteback() error { return nil }

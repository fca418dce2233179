package sqlitestore

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to start writing the WAL's dirty pages to
// the disk now and returns without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE, which neither waits nor reports or clears a
// write error: the flush still does both). The writer calls it after each
// commit that changed the file, so that the pages are on their way while
// the syncer is woken and the flush that answers the commit's callers,
// which waits for the same pages, finds less left to do.
func (w *walSyncer) startWriteback() error {
	var werr error
	if err := w.raw.Control(func(fd uintptr) {
		werr = unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	return werr
}

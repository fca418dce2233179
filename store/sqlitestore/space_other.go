//go:build !(linux || darwin)

package sqlitestore

// freeSpace is unknown here.
func freeSpace(string) (uint64, bool) { return 0, false }

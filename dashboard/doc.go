// Package dashboard is the operator UI at /ui/: server-rendered pages over
// the admin API, from assets embedded in the binary. It is a client of the
// admin API, called in process with the signed-in key, so the API alone
// decides what a key may see or change and what is redacted.
package dashboard

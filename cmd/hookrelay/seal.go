package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// The keys that seal stored events (store/seal): a key ring written as
// seal.ParseKeys reads it, in the environment or in a file.
const (
	envEncryptionKey     = "HOOKRELAY_ENCRYPTION_KEY"
	envEncryptionKeyFile = "HOOKRELAY_ENCRYPTION_KEY_FILE"
)

// unsealedNotice is logged once at start by a process that stores events
// in clear.
const unsealedNotice = "event payloads are stored unencrypted: set " + envEncryptionKey + " to seal them"

// encryptionKeys reads the key ring from HOOKRELAY_ENCRYPTION_KEY or from
// the file named by file (--encryption-key-file, HOOKRELAY_ENCRYPTION_KEY_FILE);
// nil when neither is set. Both at once, or a ring that does not parse, is
// an error naming where it came from, never quoting a key.
func (m *Main) encryptionKeys(file string) (*seal.Keys, error) {
	k, _, err := m.encryptionKeyRing(file)
	return k, err
}

// encryptionKeyRing is encryptionKeys with where the ring came from, for
// messages: the variable's name or the file's.
func (m *Main) encryptionKeyRing(file string) (*seal.Keys, string, error) {
	inline := m.env(envEncryptionKey, "")
	switch {
	case inline != "" && file != "":
		return nil, "", fmt.Errorf("%s and a key file (--encryption-key-file or %s) are both set: set one", envEncryptionKey, envEncryptionKeyFile)
	case inline != "":
		k, err := seal.ParseKeys(inline)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w (format: %s)", envEncryptionKey, err, seal.Format)
		}
		return k, envEncryptionKey, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("encryption key file: %w", err)
		}
		k, err := seal.ParseKeys(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("encryption key file %s: %w (format: %s, one key a line or comma-separated)", file, err, seal.Format)
		}
		return k, "the key file " + file, nil
	}
	return nil, "", nil
}

// checkSealed reads the store's newest event, so that a process whose keys
// cannot open what the store holds stops at start, before it serves
// anything, rather than failing on every read. It changes nothing.
// source names where keys came from.
//
// It then reads the oldest event: one sealed with a key the ring lacks
// does not stop the start (a key left out on purpose leaves the events it
// sealed unreadable), but is told in warn, as a key forgotten after a
// rotation would be, before resealing moved its events.
func checkSealed(ctx context.Context, st backend, keys *seal.Keys, source string) (warn string, err error) {
	evs, _, err := st.ListEvents(ctx, store.EventFilter{Limit: 1})
	if err == nil && len(evs) == 1 {
		_, err = st.Event(ctx, evs[0].ID)
	}
	if err != nil {
		return "", sealError("the newest event", err, keys, source)
	}
	if len(evs) == 0 {
		return "", nil
	}
	oldest, err := st.OldestEventID(ctx)
	if err != nil {
		return "", fmt.Errorf("read the oldest event: %w", err)
	}
	if oldest == "" || oldest == evs[0].ID {
		return "", nil
	}
	_, err = st.Event(ctx, oldest)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		// Readable, or pruned since it was found: nothing to say.
		return "", nil
	}
	re, cause, remedy := sealCause(err, keys, source)
	switch {
	case re == nil:
		return "", fmt.Errorf("read the oldest event: %w", err)
	case cause == "":
		return fmt.Sprintf("the oldest %s, %s, cannot be read: %v", re.Kind, re.ID, err), nil
	}
	return fmt.Sprintf("the oldest %s, %s, %s: its payload cannot be read, nor those of the other events sealed with it, and their deliveries fail without a request; %s, or leave the key out only to keep them unreadable",
		re.Kind, re.ID, cause, remedy), nil
}

// sealError says why which (an event of the store) could not be read, and
// what to do when keys are the reason.
func sealError(which string, err error, keys *seal.Keys, source string) error {
	re, cause, remedy := sealCause(err, keys, source)
	if cause == "" {
		return fmt.Errorf("read %s: %w", which, err)
	}
	return fmt.Errorf("%s %s %s: %s; nothing was changed", re.Kind, re.ID, cause, remedy)
}

// sealCause tells, when keys are why err keeps a stored record from being
// read, which record, what is wrong ("is sealed with key k1, which … does
// not hold (it holds k2)") and what reads it again. re is nil when err is
// not about a sealed record; cause is empty when keys are not the reason.
func sealCause(err error, keys *seal.Keys, source string) (re *seal.RecordError, cause, remedy string) {
	var (
		uk *seal.UnknownKeyError
		oe *seal.OpenError
	)
	if !errors.As(err, &re) {
		return nil, "", ""
	}
	switch {
	case errors.As(err, &uk) && keys == nil:
		return re, "is sealed with key " + uk.ID + ", and no key is set",
			fmt.Sprintf("set %s (or %s) to the key ring that holds it", envEncryptionKey, envEncryptionKeyFile)
	case errors.As(err, &uk):
		return re, fmt.Sprintf("is sealed with key %s, which %s does not hold (it holds %s)", uk.ID, source, strings.Join(keys.IDs(), ", ")),
			fmt.Sprintf("add it after the current key, as in %q", keys.Current()+":…,"+uk.ID+":…")
	case errors.As(err, &oe):
		return re, fmt.Sprintf("is sealed with key %s, but it does not open under the key %s holds under that id", oe.ID, source),
			"that key is not the one it was sealed with; give the right key"
	}
	return re, "", ""
}

package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// A sealed value is
//
//	magic | len(key id) (1 byte) | key id | nonce (12 bytes) | ciphertext | GCM tag (16 bytes)
//
// where magic is "\x00hrs1". Everything before the nonce and the caller's
// associated data (which binds a value to its record and field, so that a
// value moved to another record does not open) are authenticated with it.
// The nonce is random for every value: a key may seal some 2^32 values
// before it should be replaced.
const magic = "\x00hrs1"

const (
	// KeySize is the size of a key: AES-256.
	KeySize = 32
	// maxIDLen bounds a key id, which every sealed value carries.
	maxIDLen  = 32
	nonceSize = 12
	tagSize   = 16
)

// ErrOpen is the error of a value that does not open under the key it
// names: the key differs from the one that sealed it, or the value was
// altered or moved.
var ErrOpen = errors.New("it does not open under that key: the key differs from the one it was sealed with, or the value was altered")

// ErrMalformed is the error of a value that is not a sealed value.
var ErrMalformed = errors.New("not a sealed value")

// OpenError is the error of a value that does not open under the key it
// names; it is ErrOpen.
type OpenError struct {
	ID string // the key id the value names
}

func (e *OpenError) Error() string { return fmt.Sprintf("sealed with key %s, but %v", e.ID, ErrOpen) }

func (e *OpenError) Unwrap() error { return ErrOpen }

// UnknownKeyError is the error of a value sealed with a key the ring does
// not hold.
type UnknownKeyError struct {
	ID    string   // the key id the value names
	Known []string // the ids the ring holds
}

func (e *UnknownKeyError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("sealed with key %s, and no keys are given", e.ID)
	}
	return fmt.Sprintf("sealed with key %s, which the keys given (%s) do not hold", e.ID, strings.Join(e.Known, ", "))
}

// RecordError is the error of a sealed part of a stored record that does
// not open: it names the record, so that an operator can find it.
type RecordError struct {
	Kind string // what the record is: "event"
	ID   string // the record's id
	Part string // the part that does not open: "body", "headers"…
	Err  error  // an *UnknownKeyError, ErrOpen or ErrMalformed
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%s %s %s: %v", e.Kind, e.ID, e.Part, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Unopened reports whether err is, or wraps, a *RecordError: a sealed part
// of a stored record did not open.
func Unopened(err error) bool {
	var re *RecordError
	return errors.As(err, &re)
}

// KeyError is the error of a key ring description that cannot be used.
// It names the entry by position and id, never its key.
type KeyError struct {
	Entry int    // 1-based position; 0 for the description as a whole
	ID    string // the entry's id, when it has one
	Why   string
}

func (e *KeyError) Error() string {
	switch {
	case e.Entry == 0:
		return e.Why
	case e.ID == "":
		return fmt.Sprintf("entry %d: %s", e.Entry, e.Why)
	}
	return fmt.Sprintf("entry %d (%s): %s", e.Entry, e.ID, e.Why)
}

// Keys is a key ring: the first key seals, every key opens. A nil *Keys
// holds no key: it opens nothing and must not seal.
type Keys struct {
	ids   []string
	aeads map[string]cipher.AEAD
}

// Format is how a key ring is written, for messages and documentation.
const Format = "id:base64key[,id:base64key…], the first key sealing, e.g. k2:<openssl rand -base64 32>,k1:<the previous key>"

// ParseKeys reads a key ring written as "id:base64key" entries separated
// by commas or white space (newlines in a key file): the first entry seals
// new values, every entry opens. An id is 1 to 32 letters, digits, '.',
// '_' or '-'; a key is 32 bytes in base64 (standard or URL alphabet, padded
// or not), as `openssl rand -base64 32` prints one. Duplicate ids and a
// key given twice are refused. Errors never quote a key.
func ParseKeys(s string) (*Keys, error) {
	entries := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(entries) == 0 {
		return nil, &KeyError{Why: "no keys: want " + Format}
	}
	k := &Keys{aeads: make(map[string]cipher.AEAD, len(entries))}
	raws := make([][]byte, 0, len(entries))
	for i, e := range entries {
		n := i + 1
		id, b64, ok := strings.Cut(e, ":")
		if !ok {
			return nil, &KeyError{Entry: n, Why: "want id:base64key (a key id, a colon, then the key)"}
		}
		if err := checkID(id); err != nil {
			return nil, &KeyError{Entry: n, Why: err.Error()}
		}
		if _, dup := k.aeads[id]; dup {
			return nil, &KeyError{Entry: n, ID: id, Why: "the id is given twice"}
		}
		raw, err := decodeKey(b64)
		if err != nil {
			return nil, &KeyError{Entry: n, ID: id, Why: err.Error()}
		}
		for j, prev := range raws {
			if subtle.ConstantTimeCompare(prev, raw) == 1 {
				return nil, &KeyError{Entry: n, ID: id, Why: fmt.Sprintf("the same key as %s", k.ids[j])}
			}
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, &KeyError{Entry: n, ID: id, Why: err.Error()}
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, &KeyError{Entry: n, ID: id, Why: err.Error()}
		}
		raws = append(raws, raw)
		k.ids = append(k.ids, id)
		k.aeads[id] = aead
	}
	return k, nil
}

func checkID(id string) error {
	if id == "" {
		return errors.New("the key id before the colon is empty")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("the key id is longer than %d characters", maxIDLen)
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errors.New("the key id holds a character other than a letter, digit, '.', '_' or '-'")
		}
	}
	return nil
}

// decodeKey reads a key in any base64 alphabet, padded or not.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("the key after the colon is empty")
	}
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	raw, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("the key is not base64 (make one with: openssl rand -base64 32)")
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("the key is %d bytes: want %d (make one with: openssl rand -base64 32)", len(raw), KeySize)
	}
	return raw, nil
}

// Current is the id of the key that seals; "" for a nil ring.
func (k *Keys) Current() string {
	if k == nil {
		return ""
	}
	return k.ids[0]
}

// IDs are the ids of the ring's keys, the sealing one first.
func (k *Keys) IDs() []string {
	if k == nil {
		return nil
	}
	return append([]string(nil), k.ids...)
}

// Holds reports whether the ring holds the key id.
func (k *Keys) Holds(id string) bool {
	if k == nil {
		return false
	}
	_, ok := k.aeads[id]
	return ok
}

// Overhead is how many bytes sealing adds to a value.
func (k *Keys) Overhead() int {
	return len(magic) + 1 + len(k.Current()) + nonceSize + tagSize
}

// Seal appends to dst the value plain sealed with the current key, bound
// to ad (the record and field it belongs to, which Open must be given
// again). It panics on a nil ring: a caller seals only when keys are set.
func (k *Keys) Seal(dst, plain, ad []byte) []byte {
	id := k.ids[0]
	aead := k.aeads[id]
	start := len(dst)
	dst = append(dst, magic...)
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	headEnd := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	if _, err := rand.Read(dst[headEnd:]); err != nil {
		panic("seal: crypto/rand: " + err.Error()) // crypto/rand does not fail
	}
	nonce := dst[headEnd : headEnd+nonceSize]
	return aead.Seal(dst, nonce, plain, authData(dst[start:headEnd], ad))
}

// authData is what a value's tag authenticates besides its ciphertext: its
// head and the caller's associated data.
func authData(head, ad []byte) []byte {
	b := make([]byte, 0, len(head)+len(ad))
	return append(append(b, head...), ad...)
}

// IsSealed reports whether b is a sealed value (by its head; whether it
// opens is Open's to say).
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(magic)) }

// KeyID is the id of the key that sealed b.
func KeyID(b []byte) (string, error) {
	id, _, err := split(b)
	return id, err
}

// split returns a sealed value's key id and the length of its head.
func split(b []byte) (string, int, error) {
	if !IsSealed(b) || len(b) < len(magic)+1 {
		return "", 0, ErrMalformed
	}
	n := int(b[len(magic)])
	head := len(magic) + 1 + n
	if n == 0 || n > maxIDLen || len(b) < head+nonceSize+tagSize {
		return "", 0, ErrMalformed
	}
	return string(b[len(magic)+1 : head]), head, nil
}

// Open appends to dst the value that b seals, given the ad it was sealed
// with. A value sealed with a key the ring does not hold is an
// *UnknownKeyError; one that does not open under its key, an *OpenError
// (ErrOpen).
func (k *Keys) Open(dst, b, ad []byte) ([]byte, error) {
	id, head, err := split(b)
	if err != nil {
		return nil, err
	}
	if !k.Holds(id) {
		return nil, &UnknownKeyError{ID: id, Known: k.IDs()}
	}
	nonce := b[head : head+nonceSize]
	out, err := k.aeads[id].Open(dst, nonce, b[head+nonceSize:], authData(b[:head], ad))
	if err != nil {
		return nil, &OpenError{ID: id}
	}
	return out, nil
}

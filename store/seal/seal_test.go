package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// newKey is a fresh key in base64, as `openssl rand -base64 32` prints one.
func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustKeys(t *testing.T, s string) *Keys {
	t.Helper()
	k, err := ParseKeys(s)
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	k := mustKeys(t, "k1:"+newKey(t))
	for _, plain := range [][]byte{nil, {}, []byte("x"), []byte(`{"UserToken":"eyJ.secret"}`), bytes.Repeat([]byte{0, '\n', 0xff}, 5000)} {
		ad := []byte("evt_1\x00body")
		sealed := k.Seal(nil, plain, ad)
		if !IsSealed(sealed) {
			t.Fatalf("IsSealed(%q) = false", sealed)
		}
		// Random bytes hold a short text by chance (a one-byte text about
		// one run in ten): only texts of 8 bytes or more tell.
		if len(plain) >= 8 && bytes.Contains(sealed, plain) {
			t.Fatalf("the sealed value holds the plain text")
		}
		if got := len(sealed) - len(plain); got != k.Overhead() {
			t.Errorf("overhead %d, want %d", got, k.Overhead())
		}
		if id, err := KeyID(sealed); err != nil || id != "k1" {
			t.Errorf("KeyID = %q, %v; want k1", id, err)
		}
		back, err := k.Open([]byte("keep:"), sealed, ad)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(back, append([]byte("keep:"), plain...)) {
			t.Fatalf("Open = %q, want %q after keep:", back, plain)
		}
	}
	// Two seals of one value differ: the nonce is fresh each time.
	a, b := k.Seal(nil, []byte("same"), nil), k.Seal(nil, []byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same value are equal")
	}
}

func TestTamperDetected(t *testing.T) {
	k := mustKeys(t, "k1:"+newKey(t))
	ad := []byte("evt_1\x00body")
	sealed := k.Seal(nil, []byte("the payload with its token"), ad)
	// Every byte after the key id, flipped, stops the value from opening.
	head := len(magic) + 1 + len("k1")
	for i := head; i < len(sealed); i++ {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := k.Open(nil, bad, ad); !errors.Is(err, ErrOpen) {
			t.Fatalf("byte %d flipped: Open error %v, want ErrOpen", i, err)
		}
	}
	// Another record's or field's associated data: the value was moved.
	for _, other := range []string{"evt_2\x00body", "evt_1\x00meta", ""} {
		if _, err := k.Open(nil, sealed, []byte(other)); !errors.Is(err, ErrOpen) {
			t.Errorf("ad %q: Open error %v, want ErrOpen", other, err)
		}
	}
	// Cut short, or not sealed at all.
	for _, bad := range [][]byte{sealed[:head+nonceSize+tagSize-1], sealed[:3], []byte(`{"h":{}}`), nil} {
		if _, err := k.Open(nil, bad, ad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Open(%q) error %v, want ErrMalformed", bad, err)
		}
	}
	// The same id with other key material: the wrong key.
	wrong := mustKeys(t, "k1:"+newKey(t))
	_, err := wrong.Open(nil, sealed, ad)
	if !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), "sealed with key k1") {
		t.Errorf("wrong key: Open error %v, want ErrOpen naming k1", err)
	}
}

func TestUnknownKeyID(t *testing.T) {
	k1 := newKey(t)
	old := mustKeys(t, "k1:"+k1)
	sealed := old.Seal(nil, []byte("v"), nil)

	newer := mustKeys(t, "k2:"+newKey(t))
	_, err := newer.Open(nil, sealed, nil)
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.ID != "k1" {
		t.Fatalf("Open error %v, want an UnknownKeyError for k1", err)
	}
	if want := "sealed with key k1, which the keys given (k2) do not hold"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	var none *Keys
	_, err = none.Open(nil, sealed, nil)
	if !errors.As(err, &uk) || err.Error() != "sealed with key k1, and no keys are given" {
		t.Errorf("nil ring: Open error %v", err)
	}

	// Rotation: k2 seals, k1 still opens.
	ring := mustKeys(t, "k2:"+newKey(t)+", k1:"+k1)
	if ring.Current() != "k2" || strings.Join(ring.IDs(), ",") != "k2,k1" {
		t.Fatalf("Current %q, IDs %v", ring.Current(), ring.IDs())
	}
	if back, err := ring.Open(nil, sealed, nil); err != nil || string(back) != "v" {
		t.Fatalf("Open under the rotated ring = %q, %v", back, err)
	}
	if id, _ := KeyID(ring.Seal(nil, []byte("v"), nil)); id != "k2" {
		t.Errorf("the rotated ring seals with %q, want k2", id)
	}
}

func TestParseKeys(t *testing.T) {
	key := newKey(t)
	raw, _ := base64.StdEncoding.DecodeString(key)
	for _, good := range []string{
		"k1:" + key,
		"k1:" + strings.TrimRight(key, "="),
		"k1:" + base64.RawURLEncoding.EncodeToString(raw),
		"  k2:" + newKey(t) + " ,\n k1:" + key + "\n",
		"prod-2026.01_a:" + key,
	} {
		if _, err := ParseKeys(good); err != nil {
			t.Errorf("ParseKeys(%q): %v", good, err)
		}
	}
	short := base64.StdEncoding.EncodeToString(raw[:16])
	for _, c := range []struct{ in, want string }{
		{"", "no keys: want id:base64key"},
		{" , \n", "no keys"},
		{key, "entry 1: want id:base64key (a key id, a colon, then the key)"},
		{":" + key, "entry 1: the key id before the colon is empty"},
		{"k1:", "entry 1 (k1): the key after the colon is empty"},
		{"k1:" + short, "entry 1 (k1): the key is 16 bytes: want 32"},
		{"k1:not*base64!", "entry 1 (k1): the key is not base64"},
		{"k/1:" + key, "entry 1: the key id holds a character other than"},
		{strings.Repeat("k", 33) + ":" + key, "entry 1: the key id is longer than 32 characters"},
		{"k1:" + key + ",k1:" + newKey(t), "entry 2 (k1): the id is given twice"},
		{"k2:" + key + ",k1:" + key, "entry 2 (k1): the same key as k2"},
	} {
		_, err := ParseKeys(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseKeys(%q) error %v, want one holding %q", c.in, err, c.want)
			continue
		}
		// A message never quotes key material.
		if strings.Contains(err.Error(), strings.TrimRight(key, "=")[:12]) || strings.Contains(err.Error(), short[:12]) {
			t.Errorf("ParseKeys error %q quotes the key", err)
		}
	}
}

// BenchmarkSeal1KiB is what sealing costs an event's body of 1 KiB, the
// size BenchmarkIngest sends.
func BenchmarkSeal1KiB(b *testing.B) {
	k, err := ParseKeys("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KeySize)))
	if err != nil {
		b.Fatal(err)
	}
	plain := bytes.Repeat([]byte("x"), 1024)
	ad := []byte("evt_01\x00body")
	buf := make([]byte, 0, len(plain)+k.Overhead())
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		buf = k.Seal(buf[:0], plain, ad)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/store/storetest"
)

func TestEncryptionKeys(t *testing.T) {
	k1, k2 := storetest.KeyEntry(t, "k1"), storetest.KeyEntry(t, "k2")
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte(k2+"\n"+k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("k1:short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, env, file string
		want            string // the ring's ids, or the error
	}{
		{"none", "", "", ""},
		{"env", k2 + "," + k1, "", "k2,k1"},
		{"file, one key a line", "", file, "k2,k1"},
		{"both", k1, file, "error: HOOKRELAY_ENCRYPTION_KEY and a key file (--encryption-key-file or HOOKRELAY_ENCRYPTION_KEY_FILE) are both set: set one"},
		{"malformed env", "k1", "", "error: HOOKRELAY_ENCRYPTION_KEY: entry 1: want id:base64key"},
		{"malformed file", "", bad, "error: encryption key file " + bad + ": entry 1 (k1): the key is"},
		{"missing file", "", filepath.Join(dir, "nope"), "error: encryption key file: open"},
	} {
		m := &Main{LookupEnv: func(k string) (string, bool) {
			if k == envEncryptionKey && c.env != "" {
				return c.env, true
			}
			return "", false
		}}
		keys, err := m.encryptionKeys(c.file)
		got := strings.Join(keys.IDs(), ",")
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, c.want) || (c.want == "" && got != "") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
		if strings.Contains(got, strings.SplitN(k1, ":", 2)[1]) {
			t.Errorf("%s: the message quotes a key", c.name)
		}
	}
}

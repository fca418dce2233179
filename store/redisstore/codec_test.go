package redisstore

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzEncodeMeta: what encodeMeta writes is JSON that reads back as the
// meta it was given, as encoding/json's own output would (invalid UTF-8
// read back as encoding/json writes it).
func FuzzEncodeMeta(f *testing.F) {
	f.Add("key-1", "content-type", "application/json", "q", "a b")
	f.Add("", "x-\"quoted\"\\", "tab\there\nnew\rline\x00\x1f", "<>&", "ünïcödé \u2028")
	f.Add("\xff\xfe", "k", "v\xc3", "", "")
	f.Fuzz(func(t *testing.T, key, hk, hv, qk, qv string) {
		m := eventMeta{Key: key, Headers: map[string]string{hk: hv, "content-type": "application/json"}}
		if qk != "" {
			m.Query = map[string]string{qk: qv}
		}
		b, err := encodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		var got eventMeta
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("encodeMeta wrote %q, not JSON: %v", b, err)
		}
		std, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var want eventMeta
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("encodeMeta %q reads back differently from encoding/json's %q (-want +got):\n%s", b, std, diff)
		}
	})
}

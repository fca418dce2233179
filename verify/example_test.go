package verify_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/verify"
)

// A GitHub hook checked against the example in GitHub's documentation.
func Example() {
	v, err := verify.New(verify.Config{Scheme: "github", Secrets: []string{"It's a Secret to Everybody"}})
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	fmt.Println(v.Verify(h, []byte("Hello, World!"), time.Now()))
	fmt.Println(v.Verify(h, []byte("Hello, World?"), time.Now()))
	fmt.Println(v.Verify(http.Header{}, []byte("Hello, World!"), time.Now()))
	// Output:
	// <nil>
	// signature verification failed: signature mismatch
	// signature verification failed: missing header X-Hub-Signature-256
}

// Rotating a Stripe endpoint secret: both secrets pass while the sender switches over.
func ExampleNew_rotation() {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"evt_1"}`)
	oldSender, _ := verify.New(verify.Config{Scheme: "stripe", Secrets: []string{"whsec_old"}})
	during, _ := verify.New(verify.Config{Scheme: "stripe", Secrets: []string{"whsec_new", "whsec_old"}})
	after, _ := verify.New(verify.Config{Scheme: "stripe", Secrets: []string{"whsec_new"}})
	h := oldSender.Sign(body, now)
	fmt.Println(during.Verify(h, body, now))
	fmt.Println(after.Verify(h, body, now))
	fmt.Println(during.Verify(h, body, now.Add(10*time.Minute)))
	// Output:
	// <nil>
	// signature verification failed: signature mismatch
	// signature verification failed: timestamp too old (tolerance 5m0s)
}

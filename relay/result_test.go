package relay

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/store"
)

// An attempt's result names the delivery's end when it ended, else why the
// attempt failed: the label of hookrelay_delivery_attempts_total.
func TestAttemptResult(t *testing.T) {
	retrying := store.Outcome{Status: store.DeliveryRetrying}
	timeout := fmt.Errorf("timeout: no answer within 10s: %w", context.DeadlineExceeded)
	cases := []struct {
		name string
		out  store.Outcome
		res  actions.Result
		want string
	}{
		{"a 2xx", store.Outcome{Status: store.DeliverySucceeded}, actions.Result{StatusCode: 204}, ResultSuccess},
		{"the last attempt failed", store.Outcome{Status: store.DeliveryDead}, actions.Result{StatusCode: 500, Err: errors.New("status 500")}, ResultDead},
		{"410 is final", store.Outcome{Status: store.DeliveryDead}, actions.Result{StatusCode: 410, Err: errors.New("status 410")}, ResultDead},
		{"429", retrying, actions.Result{StatusCode: 429, Err: &actions.RetryAfterError{At: time.Now(), StatusCode: 429}}, ResultThrottled},
		{"503", retrying, actions.Result{StatusCode: 503, Err: errors.New("status 503")}, ResultServerError},
		{"404", retrying, actions.Result{StatusCode: 404, Err: errors.New("status 404")}, ResultClientError},
		{"302", retrying, actions.Result{StatusCode: 302, Err: errors.New("status 302: redirects are not followed")}, ResultRedirect},
		{"no answer in time", retrying, actions.Result{Err: timeout}, ResultTimeout},
		{"connection refused", retrying, actions.Result{Err: errors.New("dial tcp 127.0.0.1:9: connect: connection refused")}, ResultNetwork},
	}
	for _, c := range cases {
		if got := result(c.out, c.res); got != c.want {
			t.Errorf("%s: result = %q, want %q", c.name, got, c.want)
		}
	}
}

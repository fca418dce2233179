// Package redisinfo reads what Redis's INFO says of the work a store gives
// it: the server's CPU time, and the calls that carry the store's state
// changes. The benchmark and the tests read them the same way.
package redisinfo

import (
	"fmt"
	"strconv"
	"strings"
)

// Fields splits the text of INFO into its fields: one "name:value" a
// line, section headers and blank lines left out.
func Fields(text string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			fields[k] = v
		}
	}
	return fields
}

// CPU is the CPU time, user and system, that the server has used since it
// started, in seconds (INFO cpu; its children's not counted).
func CPU(fields map[string]string) (float64, error) {
	var total float64
	for _, name := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, ok := fields[name]
		if !ok {
			return 0, fmt.Errorf("INFO cpu has no %s", name)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu: %s:%s: %w", name, v, err)
		}
		total += x
	}
	return total, nil
}

// stateCommands are the INFO commandstats lines of the calls that carry a
// store's state changes: its scripts (EVALSHA, EVAL) and transactions
// (EXEC, whose time holds that of the commands it ran, and the MULTI, and
// the WATCH and MGET of the idempotency keys, that a batch of accepts
// without a script sends around it). carries marks those counted as
// calls: a script or a transaction each.
var stateCommands = []struct {
	name    string
	carries bool
}{
	{"cmdstat_evalsha", true}, {"cmdstat_eval", true}, {"cmdstat_exec", true},
	{"cmdstat_multi", false}, {"cmdstat_watch", false}, {"cmdstat_mget", false},
}

// State is what the calls carrying the store's state changes have cost
// since the statistics were last reset (INFO commandstats): how many
// scripts and transactions ran, and the time, in microseconds, of every
// command of stateCommands. Redis times a command by the clock, so the time
// includes any the server waited for a core. A command never called since
// the reset has no line, and counts nothing.
func State(fields map[string]string) (calls, usec int64, err error) {
	for _, c := range stateCommands {
		line, ok := fields[c.name]
		if !ok {
			continue
		}
		// calls=3,usec=120,usec_per_call=40.00,…
		for _, kv := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(kv, "=")
			if name != "usec" && (name != "calls" || !c.carries) {
				continue
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("INFO commandstats: %s: %s=%s: %w", c.name, name, val, err)
			}
			if name == "usec" {
				usec += n
			} else {
				calls += n
			}
		}
	}
	return calls, usec, nil
}

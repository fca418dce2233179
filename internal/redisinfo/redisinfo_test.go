package redisinfo

import "testing"

const info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.000000\r\n\r\n" +
	"# Commandstats\r\ncmdstat_evalsha:calls=1106,usec=416236,usec_per_call=376.34,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_eval:calls=4,usec=100,usec_per_call=25.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_get:calls=7,usec=9,usec_per_call=1.29,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_exec:calls=20,usec=2000,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_watch:calls=20,usec=30,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_mget:calls=20,usec=40,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_set:calls=200,usec=700,usec_per_call=3.50,rejected_calls=0,failed_calls=0\r\n"

func TestCPU(t *testing.T) {
	cpu, err := CPU(Fields(info))
	if err != nil || cpu != 3.75 {
		t.Errorf("CPU = %v s, %v; want 3.75 (user and system, not the children's)", cpu, err)
	}
	if _, err := CPU(Fields("# CPU\r\nused_cpu_sys:1.5\r\n")); err == nil {
		t.Error("CPU without used_cpu_user: no error")
	}
	if _, err := CPU(Fields("used_cpu_sys:1.5\r\nused_cpu_user:x\r\n")); err == nil {
		t.Error("CPU of used_cpu_user:x: no error")
	}
}

func TestState(t *testing.T) {
	calls, usec, err := State(Fields(info))
	if err != nil || calls != 1130 || usec != 418406 {
		t.Errorf("State = %d calls, %d µs, %v; want 1130 calls (EVALSHA, EVAL and EXEC), 418406 µs (theirs, WATCH's and MGET's, not that of the commands EXEC ran)", calls, usec, err)
	}
	calls, usec, err = State(Fields("# Commandstats\r\ncmdstat_get:calls=7,usec=9\r\n"))
	if err != nil || calls != 0 || usec != 0 {
		t.Errorf("State with no state command called = %d, %d, %v; want 0, 0, nil", calls, usec, err)
	}
	if _, _, err := State(Fields("cmdstat_exec:calls=x,usec=9\r\n")); err == nil {
		t.Error("State of calls=x: no error")
	}
}

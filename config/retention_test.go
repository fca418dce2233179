package config

import (
	"testing"
	"time"
)

func TestLoadRetention(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Retention
	}{
		{"defaults", egressHooks, Retention{Completed: 168 * time.Hour, Failed: 720 * time.Hour}},
		{"both", egressHooks + "retention: {completed: 48h, failed: 2160h}\n", Retention{Completed: 48 * time.Hour, Failed: 2160 * time.Hour}},
		{"one", egressHooks + "retention:\n  failed: 336h\n", Retention{Completed: 168 * time.Hour, Failed: 336 * time.Hour}},
		{"short windows with short keys", egressHooks + "    idempotency: {ttl: 1s}\nretention: {completed: 2s, failed: 4s}\n",
			Retention{Completed: 2 * time.Second, Failed: 4 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.text), env(nil))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Retention != tt.want {
				t.Errorf("Retention = %+v, want %+v", c.Retention, tt.want)
			}
		})
	}
}

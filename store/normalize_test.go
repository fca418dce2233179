package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCheckCursor(t *testing.T) {
	id := NewID("dlv", time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	for _, tt := range []struct {
		cursor string
		ok     bool
	}{
		{"", true},
		{id, true},
		{"dlv_" + strings.Repeat("Z", 26), true},
		{"evt" + id[3:], false},
		{id[:29], false},
		{id + "A", false},
		{"dlv_" + strings.Repeat("I", 26), false},
		{"dlv_" + strings.Repeat("z", 26), false},
		{fmt.Sprintf("dlv_%026d", 0)[:29] + "\x00", false},
	} {
		if err := CheckCursor(tt.cursor, "dlv"); (err == nil) != tt.ok {
			t.Errorf("CheckCursor(%q) = %v, want ok %v", tt.cursor, err, tt.ok)
		}
	}
}

func TestPageLimit(t *testing.T) {
	for in, want := range map[int]int{-1: DefaultLimit, 0: DefaultLimit, 1: 1, 1000: 1000, 1001: MaxLimit} {
		if got := PageLimit(in); got != want {
			t.Errorf("PageLimit(%d) = %d, want %d", in, got, want)
		}
	}
}

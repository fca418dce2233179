package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]+)"`)

// knownFields is every key the config files accept.
var knownFields = func() []string {
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(scalar{}) || t == reflect.TypeOf(anyNode{}) {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && !seen[name] {
				seen[name] = true
				walk(f.Type)
			}
		}
	}
	for _, v := range []any{rawConfig{}, rawActionFile{}, rawRuleFile{}} {
		walk(reflect.TypeOf(v))
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	return names
}()

// suggestField proposes the known key closest to an unknown one.
func suggestField(msg string) string {
	m := unknownFieldRE.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	best, bestD := "", 3
	for _, k := range knownFields {
		if d := editDistance(m[1], k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

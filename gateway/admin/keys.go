package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Scopes an API key may carry.
const (
	ScopeRead     = "read"     // every GET
	ScopeWrite    = "write"    // every change to events, deliveries, actions and keys
	ScopeWebhooks = "webhooks" // hooks only: list, test ping, reload
)

// AllScopes lists the valid scopes.
var AllScopes = []string{ScopeRead, ScopeWrite, ScopeWebhooks}

const (
	secretPrefix = "hr_"
	prefixLen    = 10 // characters of the secret kept to recognise a key
)

// NewKey makes a key with a fresh secret. The secret is returned once and
// only its hash is kept in the key.
func NewKey(name string, scopes []string, now time.Time) (store.APIKey, string, error) {
	if strings.TrimSpace(name) == "" {
		return store.APIKey{}, "", fmt.Errorf("a key needs a name")
	}
	scopes, err := ParseScopes(strings.Join(scopes, ","))
	if err != nil {
		return store.APIKey{}, "", err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return store.APIKey{}, "", err
	}
	secret := secretPrefix + hex.EncodeToString(b[:])
	return store.APIKey{
		ID:        store.NewID("key", now),
		Name:      name,
		Prefix:    secret[:prefixLen],
		Hash:      HashSecret(secret),
		Scopes:    scopes,
		CreatedAt: now,
	}, secret, nil
}

// HashSecret is how a key's secret is stored and looked up.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ParseScopes reads a comma-separated scope list.
func ParseScopes(s string) ([]string, error) {
	var out []string
	for _, sc := range strings.Split(s, ",") {
		sc = strings.TrimSpace(sc)
		if sc == "" {
			continue
		}
		if !slices.Contains(AllScopes, sc) {
			return nil, fmt.Errorf("unknown scope %q: use %s", sc, strings.Join(AllScopes, ", "))
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("a key needs at least one scope: %s", strings.Join(AllScopes, ", "))
	}
	return out, nil
}

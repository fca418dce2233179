package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

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
// only its hash is kept in the key. scopes are checked by ParseScopes.
func NewKey(name string, scopes []string, now time.Time) (store.APIKey, string, error) {
	if strings.TrimSpace(name) == "" {
		return store.APIKey{}, "", fmt.Errorf("a key needs a name")
	}
	if len(name) > maxKeyName {
		return store.APIKey{}, "", fmt.Errorf("a key's name is at most %d bytes", maxKeyName)
	}
	scopes, err := ParseScopes(scopes)
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

// maxKeyName bounds a key's name: it is shown in every key listing.
const maxKeyName = 200

// ParseScopes checks a key's scope list and returns it in the order of
// AllScopes. Each item is one scope name; an unknown, empty or repeated
// item is refused rather than dropped, so that what a key holds is exactly
// what was asked for.
func ParseScopes(list []string) ([]string, error) {
	seen := map[string]bool{}
	for _, sc := range list {
		sc = strings.TrimSpace(sc)
		switch {
		case sc == "":
			return nil, fmt.Errorf("empty scope: use %s", strings.Join(AllScopes, ", "))
		case !slices.Contains(AllScopes, sc):
			return nil, fmt.Errorf("unknown scope %q: use %s", sc, strings.Join(AllScopes, ", "))
		case seen[sc]:
			return nil, fmt.Errorf("scope %q is given twice", sc)
		}
		seen[sc] = true
	}
	var out []string
	for _, sc := range AllScopes {
		if seen[sc] {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("a key needs at least one scope: %s", strings.Join(AllScopes, ", "))
	}
	return out, nil
}

// ViewKey shows a stored key as the API does, for the CLI working on the
// store directly.
func ViewKey(k store.APIKey) KeyView { return newKeyView(k) }

// showCaller shows the key that makes the request.
func (a *API) showCaller(c *gin.Context) { c.JSON(http.StatusOK, newKeyView(caller(c))) }

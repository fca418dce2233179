// Package seal encrypts stored record values at rest with AES-256-GCM under
// a ring of named keys: the first key seals, every key opens, so that keys
// can be rotated. A sealed value names the key that sealed it.
package seal

// Package redact decides what of a credential may be shown: it hides values
// by the name they go under (Authorization, a UserToken field, every
// signature header of every scheme), by value (every secret the config
// knows, in its common encodings) and by pattern (JWTs, Bearer and Basic
// credentials, name=value pairs in free text, catch-URL tokens). The admin
// API, the CLI and the log handler all ask it, so that one place decides.
package redact

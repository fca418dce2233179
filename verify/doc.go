// Package verify proves that an inbound webhook came from the sender holding a shared secret.
// It offers one Verifier per signature scheme (a generic HMAC, OnCloudWine, OrderCloud, GitHub,
// Stripe, Shopify, Slack, Standard Webhooks and "none"), each a pure function of the request
// headers, the raw body bytes and the current time, so it runs before the body is parsed and
// tests inject the clock. MACs are compared in constant time, several secrets may be configured
// at once so that a secret can be rotated without dropping deliveries, timestamped schemes refuse
// both stale and future requests, and no error message ever carries the expected MAC or a secret.
package verify

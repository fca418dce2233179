// Package verify proves that an inbound webhook came from the sender holding a shared secret.
// It offers one Verifier per signature scheme (a generic HMAC, OnCloudWine, OrderCloud, GitHub,
// Stripe, Shopify, Slack, Standard Webhooks and "none"), each a pure function of the request
// headers, the raw body bytes and the current time, so it runs before the body is parsed and
// tests inject the clock. MACs are compared in constant time, several secrets may be configured
// at once so that a secret can be rotated without dropping deliveries, timestamped schemes refuse
// both stale and future requests, and no error message ever carries the expected MAC or a secret.
//
// A Verifier also says which idempotency key its signature vouches for (Verifier.SignedKey),
// used when a hook names no key of its own. Only what the signature covers may key an event: an
// unsigned delivery-id header could be changed on a captured request to have it accepted again.
//
//	scheme             signature covers         default key
//	github             body                     body hash (X-GitHub-Delivery is not signed)
//	shopify            body                     body hash (X-Shopify-Webhook-Id is not signed)
//	oncloudwine        body                     body hash
//	ordercloud         body                     body hash
//	hmac               body                     body hash
//	stripe             timestamp, body          the signed body's "id" (evt_…), else body hash
//	slack              timestamp, body          body hash (each retry is signed with a new timestamp)
//	standard-webhooks  id, timestamp, body      the id header of the family that verified:
//	                                            webhook-id, or svix-id for Svix's spelling
//	none               nothing                  body hash
//
// docs/idempotency.md gives the reasons and the consequences.
package verify

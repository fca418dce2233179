// Package admin is hookrelay's operator API under /api/v1: list and inspect
// events and deliveries, replay events, retry deliveries, watch each
// action's queue and breaker and pause or resume it, send test pings,
// reload the config and manage API keys. Every request is authenticated with
// an organization-wide API key whose scopes (read, write, webhooks) decide
// what it may do; keys are looked up in the store on every request, so a
// revoke takes effect at once on every instance sharing the store.
package admin

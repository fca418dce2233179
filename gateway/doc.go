// Package gateway is hookrelay's HTTP front: the catch-hook ingress that
// verifies, dedupes and stores inbound webhooks, and the health endpoints.
// It returns an http.Handler and knows the store only through the small
// interface it declares.
package gateway

// Package gateway is hookrelay's HTTP front: the catch-hook ingress that
// admits, verifies, dedupes and stores inbound webhooks, and the health
// endpoints. It returns an http.Handler (NewServer wraps it in an
// http.Server with every limit set) and knows the store only through the
// small interface it declares. A hook's auth: checks (allow_ips 403; basic
// and header token 401) run before any of the body is read, so a refused
// sender stores nothing and costs no more than its headers. A hook's
// response: (Slack's url_verification challenge) changes only the answer:
// the event is stored like any other, and the answer is given only after
// the store step succeeded, so a store failure is still 503 and a repeated
// event gets the same answer. Every request gets an id, sent back in
// Hookrelay-Request-Id and added to every line logged while serving it
// (LogHandler); what is counted goes to the Metrics interface declared here.
package gateway

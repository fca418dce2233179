// Package actions turns an action of a hookrelay config — a method, a URL
// template, headers, a query, a JSON body whose leaves are templates (or
// the event's raw body), inbound headers passed on by name, and bearer or
// OAuth2 client-credentials auth — into an HTTP request for one event (a
// value in the URL's path kept inside its segment for every receiver, or
// the delivery refused), and sends it as one attempt, signed when the
// action says so (Standard Webhooks or a plain HMAC, over the bytes sent,
// at the attempt's time): no redirects followed, a timeout, a capped
// response body, header values with CR or LF refused, loopback, private
// and metadata addresses refused at dial time unless allowed
// (GuardedTransport), a bearer JWT past its exp not sent, and every secret
// kept out of the Result that is recorded and shown.
package actions

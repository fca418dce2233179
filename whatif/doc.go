// Package whatif tells what a candidate config would do differently from
// the config in force with events already stored: each event is run through
// both configs' rules and actions as the gateway and the relay would, and
// the deliveries gained, lost and changed (method, URL, headers, body of the
// rendered request, secrets masked) are reported. Nothing is sent or stored.
package whatif

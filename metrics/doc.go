// Package metrics owns hookrelay's Prometheus registry: the counters and
// histograms the gateway and the relay report to through their own small
// interfaces, a collector that reads each action's queue and breaker from
// the store when scraped (cached briefly, so that scrapes cannot load the
// store), and the Go and process collectors. Label values come only from
// the config (hook and action names) and from fixed sets (outcomes,
// results, routes): never from ids, URLs or payloads.
package metrics

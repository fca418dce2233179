package config

// Egress settings: where actions may go.

type rawEgress struct {
	AllowNetworks anyNode `yaml:"allow_networks"`
}

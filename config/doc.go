// Package config turns hookrelay's YAML files — the main config, its rule
// files and action templates — into a validated, compiled Config. Every expr
// program and template is compiled here, so a mistake stops startup with the
// file, line and column that hold it rather than failing on the first webhook.
package config

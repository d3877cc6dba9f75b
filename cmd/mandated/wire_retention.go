package main

import (
	"context"
	"flag"
)

// retentionConfig holds the retention settings.
type retentionConfig struct{}

func (c *retentionConfig) register(fs *flag.FlagSet) {}

// runRetention applies the audit retention period until ctx ends.
func (a *app) runRetention(ctx context.Context) {}

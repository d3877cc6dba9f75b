package main

import (
	"flag"
	"log/slog"

	"github.com/mandated/mandated/notify"
)

// notifyConfig holds the notify settings.
type notifyConfig struct{}

func (c *notifyConfig) register(fs *flag.FlagSet) {}

// open builds the notifier the settings describe.
func (c *notifyConfig) open(logger *slog.Logger) (notify.Notifier, error) { return nil, nil }

package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Audit retention bounds. The CNIL recommends keeping access logs 6 months
// to 1 year, up to 3 years when justified.
const (
	defaultAuditRetention = 365 * 24 * time.Hour
	minAuditRetention     = 30 * 24 * time.Hour
	longAuditRetention    = 3 * 365 * 24 * time.Hour // longer needs a justification: warned about
	retentionEvery        = 24 * time.Hour
)

// retentionConfig holds the retention settings.
type retentionConfig struct {
	// Audit is how long the audit log keeps personal fields readable;
	// older periods' person keys and readable fields are erased.
	Audit retentionPeriod
	// err is a bad MANDATED_AUDIT_RETENTION (a bad flag fails parsing).
	err error
}

func (c *retentionConfig) register(fs *flag.FlagSet) {
	c.Audit = retentionPeriod(defaultAuditRetention)
	if v := envOr("MANDATED_AUDIT_RETENTION", ""); v != "" {
		if err := c.Audit.Set(v); err != nil {
			c.err = fmt.Errorf("MANDATED_AUDIT_RETENTION: %w", err)
		}
	}
	fs.Var(&c.Audit, "audit-retention", "how long the audit log keeps people's identifiers readable (a `period`): "+
		"a Go duration (8760h) or days (365d), at least 30d; whole UTC months older are erased daily, "+
		"the tree and its proofs stay (CNIL: 6 months to 1 year, up to 3 years when justified) [MANDATED_AUDIT_RETENTION]")
}

// check reports a bad environment value (flags are checked when parsed).
func (c *retentionConfig) check() error { return c.err }

// retentionPeriod is a duration flag that also takes days ("365d") and
// refuses less than a month.
type retentionPeriod time.Duration

func (p *retentionPeriod) String() string {
	d := time.Duration(*p)
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func (p *retentionPeriod) Set(v string) error {
	d, err := parseRetention(v)
	if err != nil {
		return err
	}
	*p = retentionPeriod(d)
	return nil
}

func parseRetention(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*366 {
			return 0, fmt.Errorf("retention %q: want days such as 365d, or a duration such as 8760h", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("retention %q: want days such as 365d, or a duration such as 8760h", v)
		}
	}
	if d < minAuditRetention {
		return 0, fmt.Errorf("retention %q is shorter than 30 days: an auditor could not check last month's access", v)
	}
	return d, nil
}

// retentionCutoff is the instant before which personal fields may go.
func (c *retentionConfig) retentionCutoff(now time.Time) time.Time {
	return now.Add(-time.Duration(c.Audit)).UTC()
}

// runRetention applies the audit retention period once at start and then
// daily, until ctx ends. On PostgreSQL, replicas take turns through an
// advisory lock (audit.Log.ApplyRetention); a run that finds nothing to
// erase records nothing, so running it on every replica is harmless.
func (a *app) runRetention(ctx context.Context) {
	if err := a.cfg.Retention.check(); err != nil {
		a.log.Error("audit retention is NOT applied: fix the setting and restart", "err", err)
		return
	}
	if d := time.Duration(a.cfg.Retention.Audit); d > longAuditRetention {
		a.log.Warn("audit retention longer than 3 years: the CNIL expects a justification", "retention", a.cfg.Retention.Audit.String())
	}
	t := time.NewTicker(retentionEvery)
	defer t.Stop()
	for {
		a.applyRetention(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *app) applyRetention(ctx context.Context) {
	before := a.cfg.Retention.retentionCutoff(a.clock.Now())
	r, err := a.audit.ApplyRetention(ctx, before)
	switch {
	case err != nil && ctx.Err() == nil:
		a.log.Error("audit retention", "err", err, "before", before)
	case err != nil:
	case r.Skipped:
		a.log.Debug("audit retention: another replica is applying it")
	case r.Keys > 0 || r.Readable > 0:
		a.log.Info("audit retention applied", "before", before, "first_period_kept", r.Period,
			"keys_erased", r.Keys, "readable_rows_erased", r.Readable)
	default:
		a.log.Debug("audit retention: nothing to erase", "before", before)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mandated/mandated/authz"
)

type trustJSON struct {
	ID        string `json:"id"`
	Issuer    string `json:"issuer"`
	Subject   string `json:"subject,omitempty"`
	Any       bool   `json:"allow_any_subject"`
	KeyID     string `json:"kid"`
	Scope     string `json:"scope"`
	ExpiresAt string `json:"expires_at"`
}

func toTrustJSON(t authz.Trust) trustJSON {
	return trustJSON{ID: t.ID, Issuer: t.Issuer, Subject: t.Subject, Any: t.AllowAnySubject, KeyID: t.KeyID,
		Scope: strings.Join(t.Scopes, " "), ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339)}
}

func trustsAdd(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("trusts add", "trusts add --iss ISS (--sub SUB | --any-subject) --jwk-file F --scope S [--scope S…] [--expires-in D] [--json]", out)
	cfg.registerCommon(fs)
	var scopes stringList
	issuer := fs.String("iss", "", "the `iss` claim of the assertions (required)")
	subject := fs.String("sub", "", "the one `sub` claim the issuer may assert")
	anySubject := fs.Bool("any-subject", false, "the issuer may assert any subject")
	jwkFile := fs.String("jwk-file", "", "file holding the issuer's public key as a JWK (required)")
	fs.Var(&scopes, "scope", "scope tokens may carry, from the catalogue (repeatable)")
	expiresIn := fs.Duration("expires-in", 365*24*time.Hour, "how long the trust lasts")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *jwkFile == "" {
		return errors.New("--jwk-file is required")
	}
	jwk, err := os.ReadFile(*jwkFile)
	if err != nil {
		return fmt.Errorf("read jwk file: %w", err)
	}
	a, err := openApp(ctx, &cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := a.authz.RegisterTrust(ctx, authz.TrustSpec{
		Issuer: *issuer, Subject: *subject, AnySubject: *anySubject, JWK: jwk, Scopes: scopes,
		ExpiresAt: a.clock.Now().Add(*expiresIn),
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(out).Encode(toTrustJSON(t))
	}
	fmt.Fprintf(out, "trust %s added: %s may assert %s until %s\n", t.ID, t.Issuer,
		map[bool]string{true: "any subject", false: "subject " + t.Subject}[t.AllowAnySubject], t.ExpiresAt.Format(time.RFC3339))
	return nil
}

func trustsList(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("trusts list", "trusts list [--json]", out)
	cfg.registerCommon(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	a, err := parseAndOpen(ctx, fs, &cfg, args)
	if err != nil {
		return err
	}
	defer a.Close()
	trusts, err := a.authz.ListTrusts(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		list := make([]trustJSON, 0, len(trusts))
		for _, t := range trusts {
			list = append(list, toTrustJSON(t))
		}
		return json.NewEncoder(out).Encode(list)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tISSUER\tSUBJECT\tSCOPES\tEXPIRES")
	for _, t := range trusts {
		sub := t.Subject
		if t.AllowAnySubject {
			sub = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Issuer, sub, strings.Join(t.Scopes, " "), t.ExpiresAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func trustsDelete(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("trusts delete", "trusts delete [flags] TRUST_ID", out)
	cfg.registerCommon(fs)
	ids, err := parseWithPositionals(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return errors.New("usage: mandated trusts delete TRUST_ID")
	}
	a, err := openApp(ctx, &cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.authz.DeleteTrust(ctx, ids[0]); err != nil {
		return err
	}
	fmt.Fprintf(out, "trust %s deleted\n", ids[0])
	return nil
}

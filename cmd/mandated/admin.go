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

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/ui"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("migrate", "migrate [flags]", out)
	cfg.registerCommon(fs)
	a, err := parseAndOpen(ctx, fs, &cfg, args)
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(out, "database %s (%s) is up to date\n", redactURL(cfg.databaseURL()), a.store.Dialect())
	return nil
}

// clientJSON is what clients create/list print.
type clientJSON struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	Name         string   `json:"client_name"`
	GrantTypes   []string `json:"grant_types"`
	Scope        string   `json:"scope"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	JWKSURI      string   `json:"jwks_uri,omitempty"`
	CreatedAt    string   `json:"created_at"`
}

func toClientJSON(c *authz.Client, secret string) clientJSON {
	return clientJSON{
		ClientID: c.ID, ClientSecret: secret, Name: c.Name, GrantTypes: c.GrantTypes,
		Scope: strings.Join(c.Scopes, " "), RedirectURIs: c.RedirectURIs, AuthMethod: c.AuthMethod,
		JWKSURI: c.JWKSURI, CreatedAt: c.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"),
	}
}

func clientsCreate(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("clients create", "clients create --name NAME --grant G [--grant G…] --scope S [--scope S…] [--redirect-uri URI…] [--auth-method M] [--jwks-uri URI | --jwks-file F] [--json]", out)
	cfg.registerCommon(fs)
	var grants, scopes, redirects, audience stringList
	name := fs.String("name", "", "the client's name, shown on consent pages (required)")
	fs.Var(&grants, "grant", "grant type: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer (repeatable)")
	fs.Var(&scopes, "scope", "scope the client may ask for, from the catalogue (repeatable)")
	fs.Var(&redirects, "redirect-uri", "exact redirect URI (repeatable; required for authorization_code)")
	fs.Var(&audience, "audience", "audience the client may request (repeatable)")
	authMethod := fs.String("auth-method", authz.AuthMethodSecretBasic, "client_secret_basic, client_secret_post, private_key_jwt or none")
	jwksURI := fs.String("jwks-uri", "", "private_key_jwt: URL of the client's JWK Set")
	jwksFile := fs.String("jwks-file", "", "private_key_jwt: file holding the client's public JWK Set")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec := authz.ClientSpec{
		Name: *name, GrantTypes: grants, Scopes: scopes, RedirectURIs: redirects, Audience: audience,
		AuthMethod: *authMethod, JWKSURI: *jwksURI,
	}
	if *jwksFile != "" {
		if *jwksURI != "" {
			return errors.New("give --jwks-uri or --jwks-file, not both")
		}
		data, err := os.ReadFile(*jwksFile)
		if err != nil {
			return fmt.Errorf("read jwks file: %w", err)
		}
		spec.JWKS = data
	}
	a, err := openApp(ctx, &cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	client, secret, err := a.authz.RegisterClient(ctx, spec)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(toClientJSON(client, secret))
	}
	fmt.Fprintf(out, "client_id:     %s\n", client.ID)
	if secret != "" {
		fmt.Fprintf(out, "client_secret: %s\n(shown once: only its hash is stored)\n", secret)
	}
	return nil
}

func clientsList(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("clients list", "clients list [--json]", out)
	cfg.registerCommon(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	a, err := parseAndOpen(ctx, fs, &cfg, args)
	if err != nil {
		return err
	}
	defer a.Close()
	clients, err := a.authz.ListClients(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		list := make([]clientJSON, 0, len(clients))
		for _, c := range clients {
			list = append(list, toClientJSON(c, ""))
		}
		return json.NewEncoder(out).Encode(list)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tNAME\tAUTH METHOD\tGRANTS\tSCOPES")
	for _, c := range clients {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.AuthMethod, strings.Join(c.GrantTypes, ","), strings.Join(c.Scopes, " "))
	}
	return tw.Flush()
}

func clientsDelete(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("clients delete", "clients delete [flags] CLIENT_ID", out)
	cfg.registerCommon(fs)
	ids, err := parseWithPositionals(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return errors.New("usage: mandated clients delete CLIENT_ID")
	}
	a, err := openApp(ctx, &cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.authz.DeleteClient(ctx, ids[0]); err != nil {
		return err
	}
	fmt.Fprintf(out, "client %s deleted, with every token issued to it\n", ids[0])
	return nil
}

func keysRotate(ctx context.Context, args []string, out io.Writer) error {
	return keysCommand(ctx, "rotate", args, out)
}

func keysList(ctx context.Context, args []string, out io.Writer) error {
	return keysCommand(ctx, "list", args, out)
}

// keysCommand rotates the signing keys (sub "rotate"), then prints the JWKS.
func keysCommand(ctx context.Context, sub string, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("keys "+sub, "keys "+sub+" [flags]", out)
	cfg.registerCommon(fs)
	a, err := parseAndOpen(ctx, fs, &cfg, args)
	if err != nil {
		return err
	}
	defer a.Close()
	if sub == "rotate" {
		if err := a.keys.Rotate(ctx); err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		fmt.Fprintln(out, "new signing key added; running servers pick it up within 30 seconds")
	}
	_, err = out.Write(append(a.keys.JWKS(), '\n'))
	return err
}

func staffCreate(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := newFlagSet("staff create", "staff create --email E --role admin|mediator|auditor [--structure NAME]", out)
	cfg.registerCommon(fs)
	email := fs.String("email", "", "the person's email (required)")
	role := fs.String("role", "", "admin, mediator or auditor (required)")
	structure := fs.String("structure", "", "the structure they belong to (created if new); without it the account is platform-wide")
	a, err := parseAndOpen(ctx, fs, &cfg, args)
	if err != nil {
		return err
	}
	defer a.Close()
	staff, token, err := a.people.CreateStaff(ctx, *email, *role, *structure, *structure == "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "staff %s (%s) created.\nSend them this single-use enrolment link (valid %s); they choose their own password and second factor there:\n\n  %s\n",
		staff.Email, staff.Role, a.people.Config().EnrolmentTTL, ui.EnrolmentURL(cfg.Issuer, token))
	return nil
}

// Command mandated is the mandate service: an OAuth2 authorization server
// whose grants are mandates. Run `mandated help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"migrate", "apply pending database migrations and exit", runMigrate},
		{"clients", "manage OAuth2 clients: create, list, delete", group("clients", []command{
			{"create", "register a client (prints its secret once)", clientsCreate},
			{"list", "list clients", clientsList},
			{"delete", "delete a client and every token issued to it", clientsDelete},
		})},
		{"trusts", "manage RFC 7523 trusted assertion issuers: add, list, delete", group("trusts", []command{
			{"add", "trust an issuer's signed assertions (JWT bearer grant)", trustsAdd},
			{"list", "list trust relationships", trustsList},
			{"delete", "end a trust relationship", trustsDelete},
		})},
		{"keys", "manage token-signing keys: rotate, list", group("keys", []command{
			{"rotate", "add a new signing key; older keys stay published until their tokens expire", keysRotate},
			{"list", "print the published JWKS", keysList},
		})},
		{"staff", "manage staff accounts: create", group("staff", []command{
			{"create", "create a staff account and print its single-use enrolment link", staffCreate},
		})},
		{"audit", "the audit log: key, export, verify", group("audit", []command{
			{"key", "print the verifier key of the audit log's signed checkpoints", auditKey},
			{"export", "write the events (JSON Lines) with a signed checkpoint covering them", auditExport},
			{"verify", "check an export offline against the verifier key (no database needed)", auditVerify},
			{"retention", "erase readable personal fields older than the retention period (proofs stay valid)", auditRetention},
		})},
		{"dev", "development helpers: seed", group("dev", []command{{"seed", "fill a structure with synthetic staff and holders (benchmarks)", devSeed}})},
		{"version", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mandated — consent-and-delegation mandate service (OAuth2 authorization server)")
	fmt.Fprintln(w, "\nUsage: mandated <command> [flags]   (mandated <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mandated:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(out)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], out)
		}
	}
	usage(errOut)
	return fmt.Errorf("unknown command %q", args[0])
}

// newFlagSet returns a flag set whose --help prints to out and returns flag.ErrHelp.
func newFlagSet(name, synopsis string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: mandated %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func runVersion(_ context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("version", "version", out)
	if err := fs.Parse(args); err != nil {
		return err
	}
	goVersion := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
	}
	fmt.Fprintf(out, "mandated %s (%s)\n", version, goVersion)
	return nil
}

// parseWithPositionals parses flags that may come before or after the
// positional arguments (`clients delete ID --database-url …`), which the flag
// package alone stops at, and returns the positionals.
func parseWithPositionals(fs *flag.FlagSet, args []string) ([]string, error) {
	var positionals []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positionals, nil
		}
		positionals = append(positionals, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// group is a command with subcommands (`mandated clients create`): it
// dispatches to them and prints their summaries for --help.
func group(name string, subs []command) func(context.Context, []string, io.Writer) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: mandated %s %s [flags]   (mandated %s <command> --help for its flags)\n", name, strings.Join(names, "|"), name)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-8s %s\n", s.name, s.summary)
		}
	}
	return func(ctx context.Context, args []string, out io.Writer) error {
		if len(args) == 0 {
			usage(out)
			return fmt.Errorf("%s needs one of: %s", name, strings.Join(names, ", "))
		}
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			usage(out)
			return nil
		}
		for _, s := range subs {
			if s.name == args[0] {
				return s.run(ctx, args[1:], out)
			}
		}
		return fmt.Errorf("unknown %s command %q (%s)", name, args[0], strings.Join(names, ", "))
	}
}

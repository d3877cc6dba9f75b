#!/usr/bin/env bash
# Load run: the mandated binary on a fresh PostgreSQL database, driven by wrk
# over loopback. Prints requests/s, p50/p99 latency and the server's RSS for
# client-credentials issuance and for introspection.
#
#   bench/load.sh                       # defaults below
#   DURATION=10s CONNS="16 64" bench/load.sh
#
# Environment (all optional):
#   PGURL      admin URL of the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
#   DURATION   wrk duration per run (default 20s)
#   THREADS    wrk threads (default 2)
#   CONNS      connection counts to try, space separated (default "8 32 128")
#   PORT       loopback port for the server (default 18080)
#   LOG_LEVEL  server log level (default info: one log line per request, as deployed)
#
# wrk and the server share the machine's cores: on a 2-core box the load
# generator takes a sizeable part of the CPU the server would otherwise have.
set -euo pipefail

cd "$(dirname "$0")/.."
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DURATION=${DURATION:-20s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-"8 32 128"}
PORT=${PORT:-18080}
LOG_LEVEL=${LOG_LEVEL:-info}
WRK=${WRK:-wrk}

command -v "$WRK" >/dev/null || { echo "wrk not found" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql not found" >&2; exit 1; }

TMP=$(mktemp -d)
DB="mandated_bench_$$"
SERVER_PID=""
SAMPLER_PID=""

cleanup() {
	set +e
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID"
		wait "$SERVER_PID" 2>/dev/null
	fi
	psql "$PGURL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "== build"
go build -o "$TMP/mandated" ./cmd/mandated

echo "== database $DB"
psql "$PGURL" -q -c "CREATE DATABASE $DB" >/dev/null
# Same server, user and options as PGURL; only the database name changes.
export MANDATED_DATABASE_URL=$(printf '%s' "$PGURL" | sed -E "s#^(postgres(ql)?://[^/]*)/[^?]*#\1/$DB#")
export MANDATED_SECRET_KEY=$(head -c 32 /dev/urandom | base64)
export MANDATED_ISSUER="http://127.0.0.1:$PORT"
export MANDATED_ADDR="127.0.0.1:$PORT"
export MANDATED_LOG_LEVEL=$LOG_LEVEL
export MANDATED_ACCESS_TOKEN_TTL=1h # the introspected token must outlive every run

"$TMP/mandated" clients create --name bench --grant client_credentials --scope mail.read --json >"$TMP/client.json"
CLIENT_ID=$(sed -n 's/.*"client_id": "\(.*\)".*/\1/p' "$TMP/client.json")
CLIENT_SECRET=$(sed -n 's/.*"client_secret": "\(.*\)".*/\1/p' "$TMP/client.json")
export AUTH=$(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)

echo "== serve on 127.0.0.1:$PORT"
"$TMP/mandated" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$PORT/.well-known/oauth-authorization-server" 2>/dev/null && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
	sleep 0.1
done

base="http://127.0.0.1:$PORT"
token() {
	curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d scope=mail.read "$base/oauth2/token" |
		sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
active() {
	curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" --data-urlencode "token=$1" "$base/oauth2/introspect" | grep -q '"active":true'
}

kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SERVER_PID/status"; }

# sample_rss FILE: the largest VmRSS seen, every 200 ms, until killed.
sample_rss() {
	local max=0 v
	while kill -0 "$SERVER_PID" 2>/dev/null; do
		v=$(kb VmRSS || echo 0)
		[ "${v:-0}" -gt "$max" ] && max=$v && echo "$max" >"$1"
		sleep 0.2
	done
}

# run NAME SCRIPT CONNS: one wrk run; appends a summary line to $TMP/summary.
run() {
	local name=$1 script=$2 c=$3 out="$TMP/wrk-$1-$3.txt"
	echo 0 >"$TMP/rss"
	sample_rss "$TMP/rss" &
	SAMPLER_PID=$!
	"$WRK" -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "bench/$script" "$base" >"$out"
	kill "$SAMPLER_PID"; wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=""
	local rps p50 p99 errs
	rps=$(awk '/^Requests\/sec/ { print $2 }' "$out")
	p50=$(awk '$1 == "50%" { print $2 }' "$out")
	p99=$(awk '$1 == "99%" { print $2 }' "$out")
	errs=$(awk '/Non-2xx|Socket errors/ { $1 = $1; printf "%s; ", $0 }' "$out")
	printf '%-11s %5s %10s %9s %9s %9s MB  %s\n' "$name" "$c" "$rps" "$p50" "$p99" \
		"$(($(cat "$TMP/rss") / 1024))" "${errs:-ok}" | tee -a "$TMP/summary"
}

echo "== warm up"
"$WRK" -t"$THREADS" -c8 -d3s -s bench/token.lua "$base" >/dev/null
TOKEN=$(token)
export TOKEN
active "$TOKEN" || { echo "fresh token does not introspect active" >&2; exit 1; }
"$WRK" -t"$THREADS" -c8 -d3s -s bench/introspect.lua "$base" >/dev/null
echo "idle RSS after warm-up: $(($(kb VmRSS) / 1024)) MB"

printf '%-11s %5s %10s %9s %9s %9s\n' run conns req/s p50 p99 maxRSS | tee "$TMP/summary"
for c in $CONNS; do
	run token token.lua "$c"
done
for c in $CONNS; do
	run introspect introspect.lua "$c"
done
active "$TOKEN" || { echo "the introspected token is no longer active: introspection figures are void" >&2; exit 1; }

rows=$(psql "$MANDATED_DATABASE_URL" -Atc "SELECT count(*) FROM access_tokens")
echo
echo "== summary ($(nproc) cores shared by wrk and the server; wrk -t$THREADS -d$DURATION)"
cat "$TMP/summary"
echo "access_tokens rows: $rows"
echo "server RSS now: $(($(kb VmRSS) / 1024)) MB, peak (VmHWM): $(($(kb VmHWM) / 1024)) MB"
echo "server errors logged: $(grep -c 'level=ERROR' "$TMP/server.log" || true)"
# Errors at the very end of a run are wrk closing its connections mid-request
# (context canceled), not server failures.
{ grep 'level=ERROR' "$TMP/server.log" || true; } | cut -c1-300 | head -3
if [ -n "${KEEP_WRK:-}" ]; then cp "$TMP"/wrk-*.txt "$TMP/server.log" "$KEEP_WRK"/; fi
exit 0

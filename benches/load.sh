#!/usr/bin/env bash
# End-to-end load test: Portcullis against a plain nginx reverse proxy in front
# of the same upstream, on loopback, measured with wrk. nginx is the yardstick
# ("what any reverse proxy costs"), so the verdict is a ratio to it, which
# stays meaningful across machines where absolute numbers do not.
#
# Knobs (environment):
#   CONNS=32 DURATION=10 WARMUP=2   wrk connections, seconds measured, seconds of warm-up
#   MIN_RATIO=0.9                   required-route req/s vs nginx below this fails the run
#   ONLY_BASELINE=1                 skip the build and Portcullis; measure the upstream and
#                                   nginx only (the upstream falls back to a small python3
#                                   server when the portcullis binary is absent)
#   SKIP_BUILD=1                    use the existing binary (PORTCULLIS_BIN, default
#                                   target/release/portcullis) instead of cargo build
#   KEEP_TMP=1                      keep the temp dir (configs, logs, raw wrk output)
#   RESULTS_DIR=benches/results     where the Markdown report goes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

CONNS=${CONNS:-32}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
MIN_RATIO=${MIN_RATIO:-0.9}
ONLY_BASELINE=${ONLY_BASELINE:-0}
RESULTS_DIR=${RESULTS_DIR:-benches/results}
BIN=${PORTCULLIS_BIN:-target/release/portcullis}
CONFIG=benches/load.toml

log() { printf 'load: %s\n' "$*" >&2; }
die() { printf 'load: ERROR: %s\n' "$*" >&2; exit 1; }

bash scripts/install-deps.sh --bench
if [[ $ONLY_BASELINE != 1 && ${SKIP_BUILD:-0} != 1 ]]; then
  cargo build --release --locked --bin portcullis --example bare_pingora
fi

# --- processes: everything started here is stopped on any exit ---------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-load.XXXXXX")
pids=()

# shellcheck disable=SC2317  # called from the EXIT trap
stop_all() {
  local pid sig i alive
  # SIGINT first: pingora treats SIGTERM as a graceful stop that waits minutes.
  # (Background jobs of a script may ignore SIGINT, hence TERM, then KILL.)
  for sig in INT TERM KILL; do
    alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && { alive=1; kill -"$sig" "$pid" 2>/dev/null || true; }
    done
    ((alive)) || break
    for ((i = 0; i < 30; i++)); do
      alive=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
  done
  wait 2>/dev/null || true
}

# shellcheck disable=SC2317  # the EXIT trap
cleanup() {
  local rc=$? f
  trap - EXIT
  stop_all
  rm -f "${report:-}.tmp"
  if ((rc != 0)); then
    for f in "$TMP"/*.log "$TMP"/nginx/error.log; do
      [[ -s $f ]] || continue
      printf -- '--- last lines of %s\n' "$f" >&2
      tail -n 20 "$f" >&2
    done
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... : runs CMD in the background, output to $TMP/NAME.log.
start() {
  local name=$1
  shift
  "$@" </dev/null >"$TMP/$name.log" 2>&1 &
  pids+=("$!")
  last_pid=$!
}

# free_port VAR: a loopback port nobody listens on, distinct from those already
# picked. Below 32768 so it cannot collide with Linux's ephemeral range.
picked=" "
free_port() {
  local p i
  for ((i = 0; i < 500; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $picked == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      picked+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "found no free loopback port"
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }

# wait_http NAME PID URL WANT TIMEOUT: bounded wait until URL answers WANT
# ("any" = any HTTP response), failing early if the process died.
wait_http() {
  local name=$1 pid=$2 url=$3 want=$4 deadline=$((SECONDS + $5)) code
  while :; do
    code=$(http_code --max-time 1 "$url")
    [[ $code == "$want" || ($want == any && $code != 000) ]] && return 0
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
    ((SECONDS < deadline)) || die "$name not ready after $5 s: $url gave $code, want $want"
    sleep 0.2
  done
}

# expect NAME WANT URL [CURL ARGS...]: refuses to measure a broken setup.
expect() {
  local name=$1 want=$2 url=$3 code
  shift 3
  code=$(http_code "$@" "$url")
  [[ $code == "$want" ]] || die "$name: $url returned $code, expected $want; not measuring a broken setup"
  log "ok: $name -> $code"
}

# --- upstream -----------------------------------------------------------------

free_port UP_PORT
free_port NGINX_PORT
free_port PX_PORT
free_port ADMIN_PORT
free_port BARE_PORT

if [[ -x $BIN ]]; then
  upstream_kind="portcullis upstream"
  start upstream "$BIN" upstream --listen "127.0.0.1:$UP_PORT"
elif [[ $ONLY_BASELINE == 1 ]]; then
  # Stand-in so the nginx/wrk half can be exercised before the binary exists.
  # A keep-alive HTTP/1.1 "200 ok" server; far slower than the real one.
  upstream_kind="python3 stand-in"
  start upstream python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$UP_PORT"
else
  die "$BIN not found after the build"
fi
wait_http upstream "$last_pid" "http://127.0.0.1:$UP_PORT/" any 15
log "upstream ($upstream_kind) on 127.0.0.1:$UP_PORT"

# --- nginx: the baseline, shaped like Portcullis (one worker, keep-alive to the
# upstream, no access log) so the comparison is of proxy work, not of settings.

mkdir -p "$TMP/nginx"
user_line=""
((EUID == 0)) && user_line="user root;"   # workers must read the 0700 temp dir
cat >"$TMP/nginx/nginx.conf" <<EOF
$user_line
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/client_body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  # Portcullis does not cap requests per connection; neither should the baseline.
  keepalive_requests 1000000;
  upstream app {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
start nginx nginx -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
wait_http nginx "$last_pid" "http://127.0.0.1:$NGINX_PORT/" any 15
log "nginx on 127.0.0.1:$NGINX_PORT"

expect upstream 200 "http://127.0.0.1:$UP_PORT/"
expect nginx 200 "http://127.0.0.1:$NGINX_PORT/"

# --- Portcullis ---------------------------------------------------------------

if [[ $ONLY_BASELINE != 1 ]]; then
  # benches/load.toml interpolates these with ${...}.
  export LOAD_LISTEN="127.0.0.1:$PX_PORT"
  export LOAD_ADMIN="127.0.0.1:$ADMIN_PORT"
  export LOAD_UPSTREAM="127.0.0.1:$UP_PORT"
  export LOAD_DATA="$TMP/load.db"
  PORTCULLIS_SESSION_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')   # 48 hex chars
  export PORTCULLIS_SESSION_KEY
  PORTCULLIS_STORE_KEY=$(head -c 32 /dev/urandom | base64)
  export PORTCULLIS_STORE_KEY
  export RUST_LOG="${RUST_LOG:-warn}"   # per-request logging would be measured too

  # The floor: pingora forwarding with nothing else (examples/bare_pingora.rs,
  # same pingora settings). nginx→bare is pingora's cost, bare→public ours.
  BARE_BIN=${BARE_BIN:-$(dirname "$BIN")/examples/bare_pingora}
  start pingora-bare "$BARE_BIN" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP_PORT"
  wait_http pingora-bare "$last_pid" "http://127.0.0.1:$BARE_PORT/" any 15

  start portcullis "$BIN" run --config "$CONFIG"
  wait_http portcullis "$last_pid" "http://127.0.0.1:$ADMIN_PORT/readyz" 200 30
  log "portcullis on 127.0.0.1:$PX_PORT (admin $ADMIN_PORT)"

  cookie=$("$BIN" sessions mint --config "$CONFIG" --email bench@example.com --groups staff,eng) ||
    die "portcullis sessions mint failed"
  cookie=${cookie%$'\r'}
  [[ -n $cookie && $cookie != *$'\n'* && $cookie == *=* ]] ||
    die "sessions mint must print one line NAME=VALUE for a Cookie: header, got: $cookie"

  expect portcullis-public 200 "http://127.0.0.1:$PX_PORT/public/x"
  expect portcullis-required 200 "http://127.0.0.1:$PX_PORT/" -H "Cookie: $cookie"
  # curl sends Accept: */*, i.e. an API client: 401, not a login redirect.
  expect portcullis-anonymous 401 "http://127.0.0.1:$PX_PORT/"
fi

# --- measure ------------------------------------------------------------------

names=() rps=() p50=() p99=() errors=()

# measure NAME URL [WRK ARGS...]
measure() {
  local name=$1 url=$2 out parsed r a b e
  shift 2
  log "wrk $name: ${WARMUP}s warm-up, ${DURATION}s measured, $CONNS connections"
  if ((WARMUP > 0)); then
    wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$@" "$url" >/dev/null
  fi
  out="$TMP/wrk-$name.txt"
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$out"
  # wrk prints latencies as 812.00us / 1.20ms / 1.02s / 1.50m; report ms.
  parsed=$(awk '
    function ms(v,  n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000
      if (u == "ms") return n
      if (u == "s")  return n * 1000
      if (u == "m")  return n * 60000
      return -1
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad += $NF }
    /Socket errors:/ { gsub(/,/, ""); bad += $4 + $6 + $8 + $10 }
    END {
      if (rps == "" || p50 == "" || p99 == "" || p50 < 0 || p99 < 0) exit 1
      printf "%.1f %.2f %.2f %d\n", rps, p50, p99, bad
    }' "$out") || { cat "$out" >&2; die "could not parse wrk output for $name"; }
  read -r r a b e <<<"$parsed"
  names+=("$name") rps+=("$r") p50+=("$a") p99+=("$b") errors+=("$e")
}

measure upstream "http://127.0.0.1:$UP_PORT/"
measure nginx "http://127.0.0.1:$NGINX_PORT/"
if [[ $ONLY_BASELINE != 1 ]]; then
  measure pingora-bare "http://127.0.0.1:$BARE_PORT/"
  measure portcullis-public "http://127.0.0.1:$PX_PORT/public/x"
  measure portcullis-required "http://127.0.0.1:$PX_PORT/" -H "Cookie: $cookie"
fi

# --- report -------------------------------------------------------------------

nginx_rps=${rps[1]}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
report="$RESULTS_DIR/load-$(date -u +%Y-%m-%d-%H%M%S).md"
mkdir -p "$RESULTS_DIR"
{
  echo "# Load test $stamp"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "- host: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "- wrk -t1 -c$CONNS -d${DURATION}s (after ${WARMUP}s warm-up), loopback, nginx 1 worker"
  echo "- upstream: $upstream_kind"
  echo
  echo "| target | req/s | p50 ms | p99 ms | vs nginx | errors |"
  echo "|---|---:|---:|---:|---:|---:|"
} >"$report.tmp"

echo
for i in "${!names[@]}"; do
  r=$(ratio "${rps[i]}" "$nginx_rps")
  printf '%-20s %10s req/s  p50 %7s ms  p99 %7s ms  %5sx nginx  %s errors\n' \
    "${names[i]}" "${rps[i]}" "${p50[i]}" "${p99[i]}" "$r" "${errors[i]}"
  printf '| %s | %s | %s | %s | %sx | %s |\n' \
    "${names[i]}" "${rps[i]}" "${p50[i]}" "${p99[i]}" "$r" "${errors[i]}" >>"$report.tmp"
done
echo

# Verdict. Errors (non-2xx, socket errors) make the numbers meaningless.
status=0
verdict="baseline only (ONLY_BASELINE=1), no verdict"
for i in "${!names[@]}"; do
  if ((errors[i] > 0)); then
    verdict="FAIL: ${names[i]} had ${errors[i]} errors (non-2xx or socket errors)"
    status=1
    cat "$TMP/wrk-${names[i]}.txt" >&2
  fi
done
if ((status == 0)) && [[ $ONLY_BASELINE != 1 ]]; then
  for i in "${!names[@]}"; do
    [[ ${names[i]} == portcullis-required ]] && req_i=$i
  done
  r=$(ratio "${rps[req_i]}" "$nginx_rps")
  if awk -v r="$r" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }'; then
    verdict="PASS: portcullis-required at ${r}x nginx (minimum ${MIN_RATIO}x)"
  else
    verdict="FAIL: portcullis-required at ${r}x nginx, below the minimum ${MIN_RATIO}x"
    status=1
  fi
fi
printf '\n%s\n' "$verdict" >>"$report.tmp"
mv "$report.tmp" "$report"

echo "$verdict"
echo "report: $report"
exit "$status"

#!/usr/bin/env bash
# bench/compare.sh: mail2line side by side with mailrise (SMTP → Apprise), the gateway a user
# would pick today. Same machine, same load (Postfix's smtp-source), same LINE stand-in (nginx,
# one access-log line per request), one run after the other. See bench/README.md.
#
#   bench/compare.sh                                  # 20 sessions, 10,000 mails of 2 KiB
#   bench/compare.sh --sessions 20 --mails 2000 --size 2048 --wait 30
#
# Three runs, each against a fresh server and a fresh spool:
#   1. mail2line, default [delivery]: durable spool, pushes paced to LINE's published limit
#      (max_requests_per_second = 2000) — what a LINE channel can actually take;
#   2. mail2line, same spool but max_requests_per_second raised: what the gateway can do;
#   3. mailrise, which posts each mail as JSON with no pacing.
# For each: mails/s end to end (start of the load → the stand-in's last request), smtp-source's
# accept rate, delivered/lost, peak RSS (VmHWM) of the server process(es); then the ratios.
#
# Options (or the environment variable in brackets):
#   --sessions N [SESSIONS]  parallel SMTP sessions (smtp-source -s), default 20
#   --mails N    [MAILS]     mails in total (smtp-source -m), default 10000
#   --size BYTES [SIZE]      body bytes per mail (smtp-source -l), default 2048
#   --wait SECS  [WAIT]      after the load, give up when no request arrived for this long (30)
#   --only mail2line|mailrise  run one side only (no ratio)
#   --no-install [NO_INSTALL=1]  never apt-get/pip install; report what is missing instead
# Also: SHARED_BENCH (dir with nginx-line-sink.conf and mailrise.yml; default
# bench/../../shared/bench), BENCH_CACHE (where the mailrise venv lives; default
# ~/.cache/mail2line-bench), MAILRISE_VERSION (pip spec, default latest), GATEWAY_BIN (a
# mail2line binary; default: `cargo build --release` and take it from the target dir),
# NGINX_PORT (18080), MAILRISE_PORT (18025), MAIL2LINE_PORT (18026), M2L_RAISED_RPS (1000000),
# KEEP_WORK=1 (keep the temp dir with the configs, server logs and nginx's access log),
# M2L_RUST_LOG (RUST_LOG for mail2line; default: unset, its shipped info level).
#
# It prints numbers and does not judge speed beyond saying whether the issue's 20× target was
# met. Exit status: 0 after a complete run, 1 when it could not be set up, 3 when mail was lost.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

SESSIONS=${SESSIONS:-20}
MAILS=${MAILS:-10000}
SIZE=${SIZE:-2048}
WAIT=${WAIT:-30}
ONLY=""
NO_INSTALL=${NO_INSTALL:-0}
SHARED_BENCH=${SHARED_BENCH:-$here/../../shared/bench}
BENCH_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mail2line-bench}
MAILRISE_VERSION=${MAILRISE_VERSION:-}
NGINX_PORT=${NGINX_PORT:-18080}
MAILRISE_PORT=${MAILRISE_PORT:-18025}
MAIL2LINE_PORT=${MAIL2LINE_PORT:-18026}
M2L_RAISED_RPS=${M2L_RAISED_RPS:-1000000}
# The recipients each side accepts: a LINE user id at mail2line's domain; mailrise's config key.
M2L_DOMAIN=text.line.example.com
M2L_RCPT="U0123456789abcdef0123456789abcdef@$M2L_DOMAIN"
MAILRISE_RCPT="line@mailrise.xyz"
SENDER="bench@sender.example"

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "compare.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --sessions) SESSIONS=${2:?--sessions needs a value}; shift 2 ;;
    --mails) MAILS=${2:?--mails needs a value}; shift 2 ;;
    --size) SIZE=${2:?--size needs a value}; shift 2 ;;
    --wait) WAIT=${2:?--wait needs a value}; shift 2 ;;
    --only) ONLY=${2:?--only needs mail2line or mailrise}; shift 2 ;;
    --no-install) NO_INSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (try --help)" >&2; exit 1 ;;
  esac
done
for v in SESSIONS MAILS SIZE WAIT NGINX_PORT MAILRISE_PORT MAIL2LINE_PORT M2L_RAISED_RPS; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "$v must be a positive whole number, not '${!v}'"
done
case "$ONLY" in ""|mail2line|mailrise) ;; *) die "--only takes mail2line or mailrise, not '$ONLY'" ;; esac

# ---------------------------------------------------------------------------------------------
# What the run needs: smtp-source (postfix), nginx (nginx-light), a mailrise venv, the gateway.

[ -f "$SHARED_BENCH/nginx-line-sink.conf" ] && [ -f "$SHARED_BENCH/mailrise.yml" ] ||
  die "no nginx-line-sink.conf and mailrise.yml in $SHARED_BENCH; set SHARED_BENCH to the directory that has them"

find_tool() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; }; }

missing_pkgs=()
SMTP_SOURCE=$(find_tool smtp-source) || missing_pkgs+=(postfix)
NGINX=$(find_tool nginx) || missing_pkgs+=(nginx-light)
if [ ${#missing_pkgs[@]} -gt 0 ]; then
  if [ "$NO_INSTALL" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing: ${missing_pkgs[*]} (smtp-source comes with postfix, nginx with nginx-light);" \
      "install them, e.g. sudo apt-get install ${missing_pkgs[*]}"
  fi
  echo "compare.sh: installing ${missing_pkgs[*]} with apt-get" >&2
  # postfix asks debconf questions; "No configuration" leaves the machine's mail alone.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_pkgs[@]}"; } >&2 ||
    die "apt-get install ${missing_pkgs[*]} failed"
  SMTP_SOURCE=$(find_tool smtp-source) || die "postfix installed but no smtp-source found"
  NGINX=$(find_tool nginx) || die "nginx-light installed but no nginx found"
fi

venv="$BENCH_CACHE/mailrise-venv"
if [ "$ONLY" != mail2line ] && [ ! -x "$venv/bin/mailrise" ]; then
  [ "$NO_INSTALL" = 1 ] && die "no mailrise in $venv; run without --no-install, or: python3 -m venv $venv && $venv/bin/pip install mailrise"
  command -v python3 >/dev/null || die "python3 is missing (needed for mailrise); install python3 and python3-venv"
  echo "compare.sh: installing mailrise${MAILRISE_VERSION:+==$MAILRISE_VERSION} into $venv" >&2
  mkdir -p "$BENCH_CACHE"
  { python3 -m venv "$venv" && "$venv/bin/pip" install -q "mailrise${MAILRISE_VERSION:+==$MAILRISE_VERSION}"; } >&2 ||
    die "could not make the mailrise venv in $venv (is python3-venv installed?)"
fi

if [ "$ONLY" != mailrise ]; then
  if [ -z "${GATEWAY_BIN:-}" ]; then
    (cd "$repo" && cargo build --release --bin mail2line) || die "cargo build --release failed"
    GATEWAY_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/mail2line"
  fi
  [ -x "$GATEWAY_BIN" ] || die "no mail2line binary at $GATEWAY_BIN"
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in NGINX_PORT MAIL2LINE_PORT MAILRISE_PORT; do
  port_busy "${!p}" && die "port ${!p} on 127.0.0.1 is in use (another benchmark?); set $p to a free port"
done

# ---------------------------------------------------------------------------------------------
# The stand-in: the shared nginx config, with its paths moved into our temp dir, its port set,
# and a log line of `<epoch.ms> <status> <method> <uri>` so the last request has a time stamp.

work=$(mktemp -d "${TMPDIR:-/tmp}/mail2line-compare.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "compare.sh: logs and configs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chmod 755 "$work" && mkdir -p "$work/nginx"
grep -q 'access_log /tmp/bench-nginx/access.log;' "$SHARED_BENCH/nginx-line-sink.conf" &&
  grep -q 'listen 127.0.0.1:18080;' "$SHARED_BENCH/nginx-line-sink.conf" ||
  die "$SHARED_BENCH/nginx-line-sink.conf changed: expected its access_log and listen lines"
sed -e "s#access_log /tmp/bench-nginx/access.log;#log_format bench '\$msec \$status \$request_method \$uri'; access_log $work/nginx/access.log bench;#" \
  -e "s#/tmp/bench-nginx#$work/nginx#g" -e "s#listen 127.0.0.1:18080;#listen 127.0.0.1:$NGINX_PORT;#" \
  "$SHARED_BENCH/nginx-line-sink.conf" >"$work/nginx.conf"
"$NGINX" -c "$work/nginx.conf" -p "$work/nginx" 2>"$work/nginx/stderr" &
nginx_pid=$!
pids+=("$nginx_pid")
access_log="$work/nginx/access.log"

wait_port() { # port pid what
  local i
  for i in $(seq 1 300); do
    port_busy "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
wait_port "$NGINX_PORT" "$nginx_pid" || die "nginx did not start: $(cat "$work/nginx/stderr" "$work/nginx/error.log" 2>/dev/null)"

pushes() { grep -c ' POST /v2/bot/message/push$' "$access_log" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------
# One run: start a server, offer the load, wait for the stand-in, take the numbers.

# Peak RSS (VmHWM, KiB) of a process and its descendants, summed: mailrise is one python
# process today, but a pool of workers would count too.
tree_hwm() {
  local pid=$1 total=0 kids k
  total=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null)
  for k in $kids; do total=$((total + $(tree_hwm "$k"))); done
  echo "${total:-0}"
}

declare -A R # results: R[<run>.<key>]

run() { # name port rcpt pid-of-server
  local name=$1 port=$2 rcpt=$3 pid=$4
  local before t0 t1 rc last=-1 now count idle_since deadline
  before=$(pushes)
  echo "--- $name: $SMTP_SOURCE -A -d -s $SESSIONS -m $MAILS -l $SIZE -S 'compare.sh' -M bench.example -f $SENDER -t $rcpt 127.0.0.1:$port" >&2
  t0=$(date +%s.%N)
  timeout 900 "$SMTP_SOURCE" -A -d -s "$SESSIONS" -m "$MAILS" -l "$SIZE" -S "compare.sh" -M bench.example \
    -f "$SENDER" -t "$rcpt" "127.0.0.1:$port" >"$work/$name.smtp-source" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  # Wait until every mail arrived, or no request came for $WAIT seconds.
  idle_since=$(date +%s)
  while :; do
    count=$(( $(pushes) - before ))
    [ "$count" -ge "$MAILS" ] && break
    now=$(date +%s)
    if [ "$count" != "$last" ]; then last=$count; idle_since=$now; fi
    [ $((now - idle_since)) -ge "$WAIT" ] && break
    sleep 0.05
  done
  local hwm
  hwm=$(tree_hwm "$pid")
  # The run's requests are the log lines after $before; the last one's time ends the clock.
  local tlast status_other
  tlast=$(grep ' POST /v2/bot/message/push$' "$access_log" | tail -n +"$((before + 1))" | awk '{print $1}' | sort -n | tail -1)
  status_other=$(grep ' POST /v2/bot/message/push$' "$access_log" | tail -n +"$((before + 1))" | awk '$2 != 200' | wc -l)
  R[$name.delivered]=$count
  R[$name.lost]=$((MAILS - count))
  R[$name.smtp_rc]=$rc
  # smtp-source -A goes on after a refusal and says so on stderr.
  R[$name.smtp_problems]=$(grep -c -i -E 'warning|error|fatal' "$work/$name.smtp-source" || true)
  R[$name.smtp_secs]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  R[$name.smtp_rate]=$(awk -v n="$MAILS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n / (b - a)}')
  if [ -n "$tlast" ] && [ "$count" -gt 0 ]; then
    R[$name.e2e_secs]=$(awk -v a="$t0" -v b="$tlast" 'BEGIN {printf "%.3f", b - a}')
    R[$name.e2e_rate]=$(awk -v n="$count" -v a="$t0" -v b="$tlast" 'BEGIN {printf "%.1f", n / (b - a)}')
  else
    R[$name.e2e_secs]=-; R[$name.e2e_rate]=0
  fi
  R[$name.rss]=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
  R[$name.non200]=$status_other
  echo "--- $name: ${R[$name.e2e_rate]} mails/s end to end, $count of $MAILS delivered" >&2
  if [ "${R[$name.smtp_problems]}" != 0 ] || [ "$rc" != 0 ]; then
    echo "--- $name: smtp-source exit $rc; its output:" >&2
    head -20 "$work/$name.smtp-source" >&2
  fi
}

stop() { # pid
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

run_mail2line() { # name extra-delivery-lines
  local name=$1 extra=$2 dir="$work/$1"
  mkdir -p "$dir"
  cat >"$dir/config.toml" <<EOF
[smtp]
listen = "127.0.0.1:$MAIL2LINE_PORT"
domain = "$M2L_DOMAIN"
# All the load comes from 127.0.0.1; the per-address limits would measure themselves.
max_sessions_per_ip = 0
max_mails_per_minute_per_ip = 0

[line]
api_base_url = "http://127.0.0.1:$NGINX_PORT"
channel_access_token = "compare-sh-token"

[storage]
dir = "$dir/data"

[delivery]
# Durable: 250 only after the mail's requests are fsync'd (SQLite WAL, synchronous = FULL).
mode = "spool"
$extra
EOF
  # The default log level (info, two lines per mail), as shipped; to a file, as under systemd.
  # M2L_RUST_LOG sets RUST_LOG instead (e.g. "warn", to see what the log lines cost).
  env -u RUST_LOG -u MAIL2LINE_CONFIG -u LINE_CHANNEL_ACCESS_TOKEN -u LINE_CHANNEL_SECRET \
    ${M2L_RUST_LOG:+RUST_LOG="$M2L_RUST_LOG"} "$GATEWAY_BIN" serve --config "$dir/config.toml" >"$dir/log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$MAIL2LINE_PORT" "$pid" || { cat "$dir/log" >&2; die "mail2line did not start ($dir/config.toml above)"; }
  run "$name" "$MAIL2LINE_PORT" "$M2L_RCPT" "$pid"
  R[$name.warnings]=$(grep -c -E 'WARN|ERROR' "$dir/log" || true)
  stop "$pid"
}

run_mailrise() {
  local dir="$work/mailrise"
  mkdir -p "$dir"
  grep -q 'port: 18025' "$SHARED_BENCH/mailrise.yml" && grep -q '127.0.0.1:18080' "$SHARED_BENCH/mailrise.yml" ||
    die "$SHARED_BENCH/mailrise.yml changed: expected port 18025 and the stand-in at 127.0.0.1:18080"
  sed -e "s#port: 18025#port: $MAILRISE_PORT#" -e "s#127.0.0.1:18080#127.0.0.1:$NGINX_PORT#" \
    "$SHARED_BENCH/mailrise.yml" >"$dir/mailrise.yml"
  "$venv/bin/mailrise" "$dir/mailrise.yml" >"$dir/log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$MAILRISE_PORT" "$pid" || { cat "$dir/log" >&2; die "mailrise did not start"; }
  run mailrise "$MAILRISE_PORT" "$MAILRISE_RCPT" "$pid"
  R[mailrise.warnings]=$(grep -c -E 'WARNING|ERROR|Traceback' "$dir/log" || true)
  stop "$pid"
}

# Other work on the machine skews every number; the summary shows how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
runs=()
if [ "$ONLY" != mailrise ]; then
  run_mail2line m2l_paced "# max_requests_per_second: the default, 2000 (LINE's published limit)"
  runs+=(m2l_paced)
  run_mail2line m2l_raised "max_requests_per_second = $M2L_RAISED_RPS"
  runs+=(m2l_raised)
fi
if [ "$ONLY" != mail2line ]; then
  run_mailrise
  runs+=(mailrise)
fi

# ---------------------------------------------------------------------------------------------
# Summary

label() {
  case "$1" in
    m2l_paced) echo "mail2line, spool, LINE-paced (max_requests_per_second = 2000, the default)${M2L_RUST_LOG:+, RUST_LOG=$M2L_RUST_LOG}" ;;
    m2l_raised) echo "mail2line, spool, limiter raised (max_requests_per_second = $M2L_RAISED_RPS)${M2L_RUST_LOG:+, RUST_LOG=$M2L_RUST_LOG}" ;;
    mailrise) echo "mailrise $("$venv/bin/pip" show mailrise 2>/dev/null | awk '/^Version:/ {print $2}') (json:// to the stand-in, no pacing)" ;;
  esac
}

lost=0
echo
echo "=== side by side: smtp-source -d -s $SESSIONS -m $MAILS -l $SIZE, stand-in nginx on 127.0.0.1:$NGINX_PORT"
echo "    $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load average before the runs: $load_before"
for r in "${runs[@]}"; do
  echo "$(label "$r")"
  printf '  end to end: %9s mails/s  (%s s from the first connection to the last request)\n' "${R[$r.e2e_rate]}" "${R[$r.e2e_secs]}"
  printf '  smtp accept: %8s mails/s  (smtp-source ran %s s, exit %s, %s warning/error lines)\n' \
    "${R[$r.smtp_rate]}" "${R[$r.smtp_secs]}" "${R[$r.smtp_rc]}" "${R[$r.smtp_problems]}"
  printf '  delivered: %s of %s   lost or refused: %s   non-200 answers: %s   server log WARN/ERROR lines: %s\n' \
    "${R[$r.delivered]}" "$MAILS" "${R[$r.lost]}" "${R[$r.non200]}" "${R[$r.warnings]:-0}"
  printf '  peak RSS: %s MiB (VmHWM)\n' "${R[$r.rss]}"
  [ "${R[$r.lost]}" -gt 0 ] && lost=1
done
if [ -z "$ONLY" ]; then
  ratio() { awk -v a="${R[$1.e2e_rate]}" -v b="${R[mailrise.e2e_rate]}" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
  verdict() { awk -v r="$1" 'BEGIN { if (r == "n/a") print "n/a"; else if (r + 0 >= 20) print "target ≥ 20× met"; else print "target ≥ 20× NOT met" }'; }
  rp=$(ratio m2l_paced)
  rr=$(ratio m2l_raised)
  echo "ratio mail2line / mailrise, end to end:"
  echo "  LINE-paced (default config): ${rp}×  ($(verdict "$rp"); capped by LINE's 2,000 requests/s, which mailrise does not respect)"
  echo "  limiter raised (gateway capacity): ${rr}×  ($(verdict "$rr"))"
  echo "peak RSS mailrise / mail2line: $(awk -v a="${R[mailrise.rss]}" -v b="${R[m2l_paced.rss]}" 'BEGIN {printf "%.1f", a / b}')× (paced), $(awk -v a="${R[mailrise.rss]}" -v b="${R[m2l_raised.rss]}" 'BEGIN {printf "%.1f", a / b}')× (raised)"
fi
[ "$lost" = 0 ] || exit 3

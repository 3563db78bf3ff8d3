#!/usr/bin/env bash
# bench/e2e.sh: runs the three standard end-to-end scenarios of benches/e2e.rs against the real
# gateway binary and prints their summaries together at the end. See bench/README.md.
#
#   bench/e2e.sh                   # the gateway's default delivery (no [delivery] section)
#   bench/e2e.sh --mode spool      # any arguments are passed on to every scenario
#   bench/e2e.sh --mode direct --extra-config my.toml
#
# It prints numbers and never judges them: timing varies too much between machines for a
# threshold to mean anything. It exits non-zero only if a scenario could not run or lost mail.
set -uo pipefail
cd "$(dirname "$0")/.."

# 1,000 idle sessions cost the gateway 1,000 descriptors and this process another 1,000 (the
# child inherits our limit). Raise the soft limit towards the hard one if it is low.
want=8192
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$want" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then
    ulimit -n "$want"
  else
    ulimit -n "$hard"
  fi
fi

# Build first, so compiler output does not land inside the first scenario's output.
cargo bench --bench e2e --no-run || exit 1

summaries=$(mktemp)
trap 'rm -f "$summaries"' EXIT
failed=0

run() {
  local name=$1
  shift
  echo
  echo "=== $name: cargo bench --bench e2e -- $*"
  local out
  out=$(mktemp)
  cargo bench -q --bench e2e -- "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  {
    echo "[$name] cargo bench --bench e2e -- $*"
    # The summary block starts at the "mail2line e2e:" line and runs to the end of the output.
    sed -n '/^mail2line e2e:/,$p' "$out"
    [ "$rc" -eq 0 ] || echo "  (exit status $rc)"
    echo
  } >>"$summaries"
  rm -f "$out"
  [ "$rc" -eq 0 ] || failed=1
}

# Throughput: 20 sessions pushing 10,000 mails of 2 KiB as fast as the gateway takes them.
run throughput --sessions 20 --mails 10000 --size 2048 "$@"
# Latency: a steady 200 mails/s for 20 s (4,000 mails); the percentiles are what count here.
run latency --sessions 20 --rate 200 --duration 20 --size 2048 "$@"
# Memory: 1,000 idle sessions held open while a light load runs; the RSS line is what counts.
run idle-sessions --idle-sessions 1000 --sessions 5 --rate 100 --mails 1000 --size 2048 "$@"

echo
echo "=================== summaries ==================="
cat "$summaries"
exit "$failed"

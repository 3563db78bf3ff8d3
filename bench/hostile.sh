#!/usr/bin/env bash
# bench/hostile.sh: the attacks of issue #16 at full size against the release binary, with the
# figures an admin sizing a machine wants: peak RSS (VmHWM), disk used, and what became of a
# normal mail sent during each attack (its latency from first SMTP byte to the push at the LINE
# stand-in, or the 4xx it got).
#
#   bench/hostile.sh              # every attack
#   bench/hostile.sh memory auth  # only these modules of tests/hostile.rs
#
# The same code runs in `cargo test --test hostile` at the size CI affords; here
# MAIL2LINE_HOSTILE_FULL=1 makes each attack full size (e.g. 1,000 sessions x 10 MiB mails) and
# each prints `HOSTILE <attack> <figure> <value>` lines, collected into one table at the end.
# The full log is in target/hostile.log. Exits non-zero when an attack's assertions fail.
set -uo pipefail
cd "$(dirname "$0")/.."
export MAIL2LINE_REQUIRE_SPEC="${MAIL2LINE_REQUIRE_SPEC:-1}"
export MAIL2LINE_HOSTILE_FULL=1
# Full-size attacks open thousands of sockets: client and gateway both need descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo test --release --test hostile --no-run || exit 1
log=target/hostile.log
filters=("$@")
# One attack at a time: each measures its own gateway's memory, and they must not share cores.
cargo test --release -q --test hostile -- --nocapture --test-threads=1 "${filters[@]}" >"$log" 2>&1
status=$?
echo
echo "attack                figure                        value"
echo "--------------------  ----------------------------  ---------------------------------"
grep -ao 'HOSTILE .*' "$log" | awk '{ v=$4; for (i=5;i<=NF;i++) v=v" "$i; printf "%-20s  %-28s  %s\n", $2, $3, v }'
echo
grep -a -E '^test result|^test .* (FAILED|ok)$' "$log"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $(date -u '+%Y-%m-%d %H:%M UTC'); full log: $log"
exit $status

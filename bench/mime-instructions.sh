#!/usr/bin/env bash
# MIME → LINE work per mail in CPU instructions, per mail type and for the mix.
#
# `cargo bench --bench mime` gives mails/s, but times on a shared or virtual machine move by
# ±30% between runs. valgrind's callgrind counts instructions instead: the same binary on the
# same input gives the same count whatever else the machine is doing, so a change to the code
# shows as a change in the count. For each mail type of benches/data/ it runs the bench binary
# in its loop mode (MIME_BENCH_LOOP=<type>:<rounds>, no criterion) for 10 and for 60 rounds and
# prints (Ir(60) − Ir(10)) / 50: one mail's instructions, start-up and first-use costs
# (tables, lazy statics) cancelled out.
#
#   bash bench/mime-instructions.sh            # needs valgrind (apt-get install valgrind)
#
# Instructions are not time: a loop of simple byte operations runs more of them per ns than
# table lookups do. The mails/s target is judged by `cargo bench --bench mime`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 2; }
bin=$(cargo bench --bench mime --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "mime" and m.get("executable"):
        print(m["executable"])' | tail -1)
[ -x "$bin" ] || { echo "could not build the mime bench (cargo bench --bench mime --no-run)" >&2; exit 2; }
count() {
  MIME_BENCH_LOOP="$1:$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
total=0
printf '%-12s %12s\n' "mail" "instructions"
for t in iso2022jp sjis html alternative mixed qp_emoji; do
  a=$(count "$t" 10)
  b=$(count "$t" 60)
  per=$(( (b - a) / 50 ))
  total=$(( total + per ))
  printf '%-12s %12d\n' "$t" "$per"
done
printf '%-12s %12d\n' "mix average" "$(( total / 6 ))"

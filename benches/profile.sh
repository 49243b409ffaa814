#!/bin/sh
# Where the gateways' CPU goes under the closed-loop bench: samples both `as4gw serve` processes
# with `perf record --call-graph dwarf` for 3 s of steady state and writes, per gateway, the
# folded stacks (gzip) and a flame graph (benches/flamegraph.py; no other tool needed).
# Usage (repository root, after `cargo build --profile dist`; needs perf and python3):
#   benches/profile.sh SUITE OUTDIR [CONCURRENCY]
#   e.g. benches/profile.sh edelivery-2.0 benches/results/issue8j/profile 64
# The sampling costs the gateways a few per cent; the bench's own figures are printed at the
# end but are not results (run.sh measures those without perf attached).
set -eu
SUITE=$1
OUT=$2
CONC=${3:-64}
BIN=${AS4GW_BIN:-target/dist/as4gw}
command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 2; }
mkdir -p "$OUT"
TAG=$(echo "$SUITE" | sed 's/edelivery-//')
"$BIN" bench --suite "$SUITE" --payload-size 4096 --messages 12000 --concurrency "$CONC" --json \
  > "$OUT/bench-$TAG.json" 2>/dev/null &
BENCH=$!
RED= BLUE=
for _ in $(seq 1 500); do
  RED=$(pgrep -f "serve.*red.toml" || true)
  BLUE=$(pgrep -f "serve.*blue.toml" || true)
  [ -n "$RED" ] && [ -n "$BLUE" ] && break
  sleep 0.02
done
[ -n "$RED" ] && [ -n "$BLUE" ] || { echo "profile.sh: the gateways did not start" >&2; exit 1; }
sleep 1.5
TMP=$(mktemp -d)
perf record -F 700 --call-graph dwarf,16384 -o "$TMP/red.data" -p "$RED" -- sleep 3 >/dev/null 2>&1 &
perf record -F 700 --call-graph dwarf,16384 -o "$TMP/blue.data" -p "$BLUE" -- sleep 3 >/dev/null 2>&1
wait %2 2>/dev/null || true
wait "$BENCH"
for g in red blue; do
  role=sender; [ "$g" = blue ] && role=receiver
  perf script -F comm,ip,sym --no-inline -i "$TMP/$g.data" 2>/dev/null \
    | python3 benches/flamegraph.py fold > "$TMP/$g.folded"
  python3 benches/flamegraph.py svg "as4gw $TAG, $CONC in flight: $g ($role)" \
    < "$TMP/$g.folded" > "$OUT/flame-$TAG-$g.svg"
  gzip -9 -c "$TMP/$g.folded" > "$OUT/stacks-$TAG-$g.folded.gz"
done
rm -rf "$TMP"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], "msgs/s", d["msgs_per_sec"], "cpu ms/msg", d["cpu_ms_per_msg"], "(perf attached)")' \
  "$OUT/bench-$TAG.json" "$SUITE"

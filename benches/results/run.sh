#!/bin/sh
# Reruns the measurements in docs/performance.md (from the repository root, after
# `cargo build --profile dist`: the binary operators run, see Cargo.toml).
# Usage: benches/results/run.sh [outdir]   — writes one JSON file per run plus machine.txt.
# Closed loop for the maximum throughput, three runs per suite at 32 and at 64 messages in
# flight (4,000 messages: a few seconds of steady state after the start); the maximum is the
# better of the two medians. Then open loop at half that maximum (`--rate`) for the latency
# target; 100 MB and 1 GiB payloads; idle RSS and start-up.
set -eu
OUT=${1:-benches/results}
BIN=${AS4GW_BIN:-target/dist/as4gw}
mkdir -p "$OUT"
{ echo "date: $(date -u +%FT%TZ)"; echo "binary: $BIN ($(git rev-parse --short HEAD 2>/dev/null || echo ?))"; echo "nproc: $(nproc)";
  grep -m1 'model name' /proc/cpuinfo; echo "loadavg: $(cat /proc/loadavg)"; } > "$OUT/machine.txt"
for i in 1 2 3; do
  for c in 32 64; do
    $BIN bench --suite edelivery-1.15 --payload-size 4096 --messages 4000 --concurrency $c --json > "$OUT/v115-4k-c$c-$i.json"
    $BIN bench --suite edelivery-2.0 --payload-size 4096 --messages 4000 --concurrency $c --json > "$OUT/v20-4k-c$c-$i.json"
  done
done
# Half of the better median (32 or 64 in flight).
half() {
  python3 -c 'import json,sys,statistics
med = lambda c: statistics.median(json.load(open(f"{sys.argv[1]}-c{c}-{i}.json"))["msgs_per_sec"] for i in (1, 2, 3))
print(round(max(med(32), med(64)) / 2))' "$1"
}
R115=$(half "$OUT"/v115-4k)
R20=$(half "$OUT"/v20-4k)
for i in 1 2 3; do
  $BIN bench --suite edelivery-1.15 --payload-size 4096 --messages 1000 --rate "$R115" --concurrency 512 --json > "$OUT/v115-4k-half-$i.json"
  $BIN bench --suite edelivery-2.0 --payload-size 4096 --messages 1000 --rate "$R20" --concurrency 512 --json > "$OUT/v20-4k-half-$i.json"
done
# Large payloads as OOTS sends them: a binary evidence after the ebRS document; and one huge XML
# payload (its digest input is the streamed exclusive canonical form) at 100 MB and 1 GiB.
$BIN bench --suite edelivery-2.0 --payload-size 104857600 --payload-type application/pdf --messages 3 --concurrency 1 --json > "$OUT/v20-100m.json"
$BIN bench --suite edelivery-2.0 --payload-size 104857600 --messages 3 --concurrency 1 --json > "$OUT/v20-100m-xml.json"
$BIN bench --suite edelivery-2.0 --payload-size 1073741824 --payload-type application/pdf --messages 1 --concurrency 1 --timeout-secs 900 --json > "$OUT/v20-1g.json"
$BIN bench --suite edelivery-2.0 --payload-size 1073741824 --messages 1 --concurrency 1 --timeout-secs 900 --json > "$OUT/v20-1g-xml.json"
$BIN bench --suite edelivery-1.15 --idle-only --json > "$OUT/idle.json"

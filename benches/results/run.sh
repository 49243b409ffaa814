#!/bin/sh
# Reruns the measurements in docs/performance.md (release build; from the repository root).
# Usage: benches/results/run.sh [outdir]   — writes one JSON file per run plus machine.txt.
set -eu
OUT=${1:-benches/results}
BIN=${AS4GW_BIN:-target/release/as4gw}
mkdir -p "$OUT"
{ echo "date: $(date -u +%FT%TZ)"; echo "nproc: $(nproc)";
  grep -m1 'model name' /proc/cpuinfo; echo "loadavg: $(cat /proc/loadavg)"; } > "$OUT/machine.txt"
for i in 1 2 3; do
  $BIN bench --suite edelivery-1.15 --payload-size 4096 --messages 2000 --concurrency 32 --json > "$OUT/v115-4k-$i.json"
  $BIN bench --suite edelivery-2.0 --payload-size 4096 --messages 2000 --concurrency 32 --json > "$OUT/v20-4k-$i.json"
done
$BIN bench --suite edelivery-2.0 --payload-size 104857600 --messages 3 --concurrency 1 --json > "$OUT/v20-100m.json"
$BIN bench --suite edelivery-1.15 --idle-only --json > "$OUT/idle.json"

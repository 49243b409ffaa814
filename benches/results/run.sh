#!/bin/sh
# Reruns the measurements in docs/performance.md (release build; from the repository root).
# Usage: benches/results/run.sh [outdir]   — writes one JSON file per run plus machine.txt.
# Closed loop (32 in flight) for the maximum throughput, three runs per suite; then open loop
# at half the median maximum (`--rate`) for the latency target; 100 MB and 1 GiB payloads;
# idle RSS and start-up.
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
half() {
  python3 -c 'import json,sys,statistics
print(round(statistics.median(json.load(open(f))["msgs_per_sec"] for f in sys.argv[1:]) / 2))' "$@"
}
R115=$(half "$OUT"/v115-4k-[123].json)
R20=$(half "$OUT"/v20-4k-[123].json)
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

#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds (default 600), one at a time, at the lowest CPU
# priority, and keeps each log in fuzz/logs/<target>.log. Fork mode with -ignore_crashes keeps a
# target running after a finding; every crashing input is saved in fuzz/artifacts/<target>/.
# Usage: fuzz/run-all.sh [SECS] [target...]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=${*:-mime_reader xml_c14n ebms_envelope security_inbound pmode_toml}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/fuzz-target}
mkdir -p logs
cargo fuzz build
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: $(date -u +%FT%TZ)" | tee "logs/$t.log"
  nice -n 19 cargo fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -print_final_stats=1 >>"logs/$t.log" 2>&1
  echo "== $t: exit $? at $(date -u +%FT%TZ)" | tee -a "logs/$t.log"
done

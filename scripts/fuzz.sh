#!/usr/bin/env bash
# Fuzz the readers of untrusted bytes (tests/fuzz.rs: parquet source, shard reader, manifest reader)
# far longer than CI does: each target runs in rounds of CASES cases, each round with a fresh random
# seed, until SECONDS per target are used up. A panic fails the round; proptest prints the shrunk
# input and saves it in tests/fuzz.proptest-regressions (commit that file and fix the bug: the
# saved case is replayed first by every later run, CI included).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [CASES_PER_ROUND=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cases=${2:-2000}
targets=(parquet_source_arbitrary_bytes parquet_source_mutated shard_reader_arbitrary_bytes shard_reader_mutated
  manifest_reader_arbitrary_bytes manifest_reader_mutated)
# The test binary itself (not `cargo test`, which would rebuild it if sources change meanwhile).
bin=$(cargo test --no-run --test fuzz 2>&1 | sed -n 's/.*Executable tests\/fuzz.rs (\(.*\))/\1/p')
[ -x "$bin" ] || { echo "cannot build tests/fuzz.rs" >&2; exit 2; }
status=0
for t in "${targets[@]}"; do
  start=$(date +%s)
  rounds=0
  while [ $(( $(date +%s) - start )) -lt "$secs" ]; do
    if ! PROPTEST_CASES=$cases "$bin" --exact "$t" >"/tmp/fuzz-$t.log" 2>&1; then
      echo "FAIL $t after $(( rounds * cases )) passing cases; see /tmp/fuzz-$t.log"
      tail -n 40 "/tmp/fuzz-$t.log"
      status=1
      break
    fi
    rounds=$(( rounds + 1 ))
  done
  [ "$status" -eq 0 ] && echo "ok   $t: $(( rounds * cases )) cases in $(( $(date +%s) - start )) s, no panic"
  [ "$status" -eq 0 ] || break
done
exit "$status"

#!/bin/sh
# Builds gemm_isa with and without gemm's x86-v4 feature, then runs the two binaries alternately
# ROUNDS times (separate processes: gemm picks its kernels once per process) and prints, per shape,
# the median GFLOP/s of each and their ratio. Usage: bench/gemm_isa/compare.sh [ROUNDS] [THREADS]
set -eu
cd "$(dirname "$0")"
rounds=${1:-5}
threads=${2:-2}
export CARGO_TARGET_DIR="${GEMM_ISA_TARGET:-target}"
cargo build --quiet --release
cp "$CARGO_TARGET_DIR/release/gemm_isa" "$CARGO_TARGET_DIR/gemm_default"
cargo build --quiet --release --features v4
cp "$CARGO_TARGET_DIR/release/gemm_isa" "$CARGO_TARGET_DIR/gemm_v4"
grep -m1 'model name' /proc/cpuinfo || true
out=$(i=0; while [ "$i" -lt "$rounds" ]; do
    "$CARGO_TARGET_DIR/gemm_default" "$threads"
    "$CARGO_TARGET_DIR/gemm_v4" "$threads"
    i=$((i + 1))
done)
echo "$out" | awk '
    { v[$1 " " $2] = v[$1 " " $2] " " $3; shapes[$2] = 1 }
    function median(s,   a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
        for (s in shapes) {
            d = median(v["default " s]); x = median(v["x86-v4 " s])
            printf "%s: default (AVX2/FMA) %.1f, x86-v4 %.1f GFLOP/s median of%s / %s: %.2fx\n", s, d, x, v["default " s], v["x86-v4 " s], x / d
        }
    }'

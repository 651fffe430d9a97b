#!/usr/bin/env bash
# vdb_core on a GPU, in one short run: parity with sentence-transformers on the golden sentences and
# throughput against sentence-transformers on the same GPU (bench/gpu_check.py says what it prints).
#
# Prepare on the CPU machine (no GPU needed; nvcc and CUDA 13.0 come from PyPI):
#     make gpu-prep CUDA_PROFILE=dev   # the cuda wheel (make cuda), stripped and xz-packed, plus a
#                                      # trimmed model and the texts, into .gpu/ (~59 MiB)
# Run on the GPU machine with the device tool, from the repository root, carrying `.gpu` (with
# ~1.7 MiB of tracked files that is ~61 of the 64 MiB that travel: keep big untracked files out):
#     run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=420)
# It takes a minute or two there: the PTX of candle's kernels is compiled by the driver on first use.
# That machine needs Python 3.12+ with torch (CUDA 13), numpy and the NVIDIA driver; it uses
# sentence-transformers when installed (else only vdb_core's numbers and the golden vectors), and
# the CUDA 13 libraries of its torch (site-packages/nvidia/cu13/lib) or of /usr/local/cuda.
# Output also goes to $OUT/gpu_check.log when $OUT is set (the device tool returns it).
set -euo pipefail
cd "$(dirname "$0")/.."
log=${OUT:-/tmp}/gpu_check.log
{
  python=${PYTHON:-python3}
  work=$(mktemp -d)
  mkdir -p "$work/site" && tar -xJf .gpu/vdb_core.tar.xz -C "$work/site"
  tar -xJf .gpu/minilm.tar.xz -C "$work"
  # cuBLAS, cuRAND, NVRTC and the CUDA runtime (CUDA 13): the torch environment's, else the toolkit's.
  libs=$("$python" - <<'PY'
import glob, os, site, sys
dirs = []
for sp in site.getsitepackages() + [site.getusersitepackages()] + sys.path:
    for lib in glob.glob(os.path.join(sp, "nvidia", "*", "lib", "libcublas.so.13")) + glob.glob(
        os.path.join(sp, "nvidia", "*", "lib", "libcurand.so.10")
    ) + glob.glob(os.path.join(sp, "nvidia", "*", "lib", "libnvrtc.so.13")) + glob.glob(
        os.path.join(sp, "nvidia", "*", "lib", "libcudart.so.13")
    ):
        d = os.path.dirname(lib)
        if d not in dirs:
            dirs.append(d)
dirs += [d for d in glob.glob("/usr/local/cuda*/lib64") + glob.glob("/usr/local/cuda*/targets/x86_64-linux/lib")]
print(":".join(dirs))
PY
)
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}" VDB_MODEL_DIR="$work/minilm" PYTHONUNBUFFERED=1
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # a local folder: never ask a hub
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$python" bench/gpu_check.py --model "$work/minilm" "$@"
} 2>&1 | tee "$log"

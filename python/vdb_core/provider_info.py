"""vdb_core as an Airflow provider: the ``qdrant`` connection type with our hook behind it.

Airflow finds this through the package's entry point ``apache_airflow_provider`` (pyproject.toml)
and reads it without importing Airflow hooks: the connection form (``conn-fields``) and its field
behaviour (``ui-field-behaviour``) are declared here, the way Airflow 3.2+ providers declare them.

The form is the official Qdrant provider's (``apache-airflow-providers-qdrant`` 1.6.1,
``get_provider_info()``), field for field: the same names, labels, types, defaults and
descriptions, the same hidden fields and the password relabelled "API Key". A connection made for
the official provider is therefore a valid one here and the other way round. What differs is the
hook behind it, :class:`vdb_core.airflow_hook.VdbQdrantHook`: its Test button opens vdb_core's own
store (gRPC) on the connection's target, which is what the DAGs use.

Do not install ``apache-airflow-providers-qdrant`` next to vdb_core: Airflow keeps the first
registration of a connection type, in the order of package names, and that would be the official
one (its Test button then checks its own REST client, not what the DAGs connect to).

Importing this module imports nothing (no Airflow, no native extension).
"""

from __future__ import annotations

from typing import Any

#: The distribution name as Airflow normalises it (must equal the installed package's name).
PACKAGE_NAME = "vdb-core"

#: The hook behind the ``qdrant`` connection type.
HOOK_CLASS_NAME = "vdb_core.airflow_hook.VdbQdrantHook"

#: The connection form's extra fields: the official Qdrant provider's ``conn-fields`` (1.6.1).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "url": {
        "label": "URL",
        "schema": {
            "type": ["string", "null"],
            "description": "Optional. Qualified URL of the Qdrant instance. "
            "Example: https://xyz-example.eu-central.aws.cloud.qdrant.io:6333",
        },
    },
    "grpc_port": {
        "label": "GRPC Port",
        "schema": {
            "type": ["integer", "null"],
            "default": 6334,
            "description": "Optional. Port of the gRPC interface.",
        },
    },
    "prefer_gprc": {
        "label": "Prefer GRPC",
        "schema": {
            "type": ["boolean", "null"],
            "default": False,
            "description": "Optional. Whether to use gPRC interface whenever possible in custom methods.",
        },
    },
    "https": {
        "label": "HTTPS",
        "schema": {
            "type": ["boolean", "null"],
            "description": "Optional. Whether to use HTTPS(SSL) protocol.",
        },
    },
    "prefix": {
        "label": "Prefix",
        "schema": {
            "type": ["string", "null"],
            "description": "Optional. Prefix to the REST URL path. Example: service/v1 will result in "
            "http://localhost:6333/service/v1/{qdrant-endpoint} for REST API.",
        },
    },
}

#: Standard fields the form hides, and the password's label (the official provider's).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "extra"],
    "relabeling": {"password": "API Key"},
}


def get_provider_info() -> dict[str, Any]:
    """The provider description Airflow's ProvidersManager reads (``provider_info.schema.json``)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "vdb_core",
        "description": "SEC-filing sentences from parquet to vectors in Qdrant; the `qdrant` connection "
        "type, tested with vdb_core's own gRPC client.\n",
        "integrations": [
            {
                "integration-name": "Qdrant (vdb_core)",
                "external-doc-url": "https://qdrant.tech/documentation",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": "Qdrant (vdb_core)", "python-modules": ["vdb_core.airflow_hook"]}],
        "connection-types": [
            {
                "connection-type": "qdrant",
                "hook-class-name": HOOK_CLASS_NAME,
                "hook-name": "Qdrant",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }

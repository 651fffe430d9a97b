"""Search filters as users write them, turned into the conditions the core reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import _error
from ._native import ConfigError
from .types import Condition, SearchParams

_QDRANT_FILTER_KEYS = {"must", "should", "must_not", "min_should"}
_RANGE_BOUNDS = ("gt", "gte", "lt", "lte")
_CONDITION_OPS = ("equals", "range", "qdrant")


def _filter(filters: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None) -> list[Condition]:
    """Three forms: Qdrant's own filter JSON (``{"must": [...], "should": [...], "must_not": [...]}``
    with match / range / datetime range conditions, as in the Qdrant documentation); the short
    ``{"form_type": "10-K", "fiscal_year": {"gte": 2020, "lt": 2023}, "ticker": ["AAPL", "MSFT"]}``
    (a value matches exactly, a list matches any of its values, a mapping is a range with Qdrant's
    bounds ``gt``/``gte``/``lt``/``lte``: numbers, or dates as ``YYYY-MM-DD`` / RFC 3339 text); or a
    list of ``{"op": "equals"|"range"|"qdrant", ...}`` conditions. Anything else (an unknown
    bound or operator) is a ``ConfigError``, never a condition quietly left out."""
    if not filters:
        return []
    if isinstance(filters, Mapping) and set(filters) <= _QDRANT_FILTER_KEYS:
        return [{"op": "qdrant", "filter": dict(filters)}]
    if isinstance(filters, Mapping):
        must: list[dict[str, Any]] = []
        for field, value in filters.items():
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - set(_RANGE_BOUNDS))
                if unknown or not value:
                    raise _error(
                        ConfigError,
                        f"filter on {field!r}: {unknown or 'no bound'} is not a range bound (use gt, gte, lt, lte)",
                        column=field,
                    )
                must.append({"key": field, "range": dict(value)})
            elif isinstance(value, list | tuple | set | frozenset):
                must.append({"key": field, "match": {"any": list(value)}})
            else:
                must.append({"key": field, "match": {"value": value}})
        return [{"op": "qdrant", "filter": {"must": must}}]
    conditions = list(filters)
    for c in conditions:
        if not isinstance(c, Mapping) or c.get("op") not in _CONDITION_OPS:
            raise _error(ConfigError, f"filter condition {c!r}: 'op' must be one of {', '.join(_CONDITION_OPS)}")
    return conditions


def _search_params(hnsw_ef: int | None, exact: bool) -> SearchParams:
    return {"hnsw_ef": hnsw_ef, "exact": bool(exact)}

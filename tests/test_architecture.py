"""The Rust crate's module picture (#22): the top-level modules of `src/` use each other without a
circle, and the lower layers never reach up (the store knows nothing of run directories, the run
handoff nothing of the pipeline). Read from the sources: every `crate::<module>` path outside
`#[cfg(test)]` code, doc comments included (a doc link is a dependency a reader follows too)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# module -> modules it must never use (besides the circles the test forbids anyway)
FORBIDDEN = {
    "store": {"handoff", "pipeline", "python", "config"},
    "handoff": {"store", "pipeline", "python", "config"},
    "files": {"handoff", "store", "pipeline", "python"},
    "embed": {"store", "handoff", "pipeline", "python"},
    "sparse": {"store", "handoff", "pipeline", "python"},
    "source": {"store", "handoff", "pipeline", "python"},
    "error": {"store", "handoff", "pipeline", "python", "files", "embed", "source", "sparse", "config"},
}


def _edges() -> dict[str, set[str]]:
    modules = {p.stem if p.is_file() else p.name for p in SRC.iterdir()} - {"lib", "main"}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for f in SRC.rglob("*.rs"):
        parts = f.relative_to(SRC).parts
        top = parts[0] if len(parts) > 1 else f.stem
        if top not in edges:
            continue
        code = f.read_text().split("#[cfg(test)]")[0]
        edges[top] |= {m for m in re.findall(r"crate::(\w+)", code) if m in modules and m != top}
    return edges


def test_the_modules_of_the_crate_form_no_circle():
    edges = _edges()
    assert {"store", "handoff", "pipeline", "files"} <= set(edges), sorted(edges)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges[node]):
            assert nxt not in path, "circle: " + " -> ".join([*path, nxt])
            if nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    for node in sorted(edges):
        visit(node, [node])


def test_lower_layers_never_use_higher_ones():
    edges = _edges()
    for module, forbidden in FORBIDDEN.items():
        assert not edges[module] & forbidden, f"src/{module} uses {sorted(edges[module] & forbidden)}"

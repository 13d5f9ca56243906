"""The package's folders show the data flow, and no import runs back up it (README Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "robust_winn"

# Lower layers never import higher ones: the order of the README's Layout drawing.
LAYER = {
    "errors": 0, "config": 1, "registry": 1, "data": 2, "models": 2, "assets": 2, "runtime": 3,
    "synthesis": 4, "objectives": 5, "training": 6, "attacks": 7, "evaluation": 7, "experiments": 8,
    "cli": 9,
    "__init__": 10, "__main__": 10,
}  # fmt: skip


def _imports(path: Path) -> list[tuple[int, str]]:
    parts = path.relative_to(PKG).with_suffix("").parts
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(parts[:-1])[: len(parts) - node.level]
            mod = base + (node.module.split(".") if node.module else [node.names[0].name])
            out.append((node.lineno, mod[0]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("robust_winn."):
            out.append((node.lineno, node.module.split(".")[1]))
    return out


def test_every_top_level_module_has_a_layer() -> None:
    tops = {p.relative_to(PKG).with_suffix("").parts[0] for p in PKG.rglob("*.py")}
    assert tops <= set(LAYER), tops - set(LAYER)


def test_no_import_runs_back_up_the_flow() -> None:
    upward = []
    for path in PKG.rglob("*.py"):
        top = path.relative_to(PKG).with_suffix("").parts[0]
        for line, target in _imports(path):
            if target in LAYER and target != top and LAYER[target] > LAYER[top]:
                upward.append(f"{path.relative_to(PKG)}:{line} ({top}) imports {target}")
    assert not upward, upward

"""The package's import graph: no two files in fer_hf/ import each other, not even lazily inside a function."""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "fer_hf"


def imported_modules(path: Path) -> set[str]:
    """Names of the fer_hf modules one file imports anywhere (top level or inside functions)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 1:  # from .x import y / from . import x
                found |= {parts[0]} if node.module else {a.name for a in node.names}
            elif node.level == 0 and parts[0] == "fer_hf":  # from fer_hf.x import y / from fer_hf import x
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("fer_hf.")}
    return (found & modules) - {path.stem}


def test_imports_are_parsed():
    graph = {p.stem: imported_modules(p) for p in PACKAGE.glob("*.py")}
    assert {"faces", "onnx_backend", "modeling"} <= graph["inference"]  # the parser sees real imports
    assert "inference" not in graph["onnx_backend"]


def test_no_two_files_in_fer_hf_import_each_other():
    graph = {p.stem: imported_modules(p) for p in PACKAGE.glob("*.py")}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    assert not pairs, f"files importing each other: {pairs}"

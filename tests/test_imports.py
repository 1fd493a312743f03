"""The package's import graph: rooms by role (fer_hf/<room>/), each importing only the rooms below it.

Read from the source (every import, top level or inside a function), not by importing anything.
"""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "fer_hf"
ROOMS = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
# what each room may import (besides itself); utils imports nothing of fer_hf
ALLOWED = {
    "utils": set(),
    "data": {"utils"},
    "models": {"data", "utils"},
    "evaluation": {"data", "models", "utils"},
    "training": {"data", "models", "evaluation", "utils"},
    "inference": {"data", "models", "utils"},
    "export": {"data", "models", "inference", "utils"},
    "hub": {"data", "models", "evaluation", "utils"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module one file imports (relative imports resolved)."""
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # `from . import x` imports a module
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "fer_hf" and parts[1] in ROOMS else None


def test_every_room_has_a_docstring_that_says_what_it_may_import():
    assert set(ROOMS) == set(ALLOWED), "a new room needs its place in ALLOWED"
    for name in ROOMS:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and ("May import" in doc or "import nothing" in doc), name


def test_imports_are_parsed():
    g = graph()
    assert {"fer_hf.inference.faces", "fer_hf.inference.onnx_backend", "fer_hf.models.modeling"} <= \
        g["fer_hf.inference.recognizer"]  # the parser sees real (relative) imports
    assert "fer_hf.data.labels" in g["fer_hf"]


def test_rooms_import_only_the_rooms_below_them():
    bad = sorted((m, dep) for m, deps in graph().items() for dep in deps
                 if room(m) and room(dep) and room(dep) != room(m) and room(dep) not in ALLOWED[room(m)])
    assert not bad, f"imports across the layering: {bad}"


def test_inference_never_imports_training_and_hub_and_data_make_no_circle():
    rooms = {}
    for m, deps in graph().items():
        rooms.setdefault(room(m), set()).update(room(d) for d in deps if room(d))
    assert "training" not in rooms["inference"]
    assert not ("hub" in rooms["data"] and "data" in rooms["hub"])


def test_no_two_files_in_fer_hf_import_each_other():
    g = graph()
    pairs = sorted({tuple(sorted((a, b))) for a, deps in g.items() for b in deps if b in g and a in g[b]
                    and a != b and "fer_hf" not in (a, b) and not b.startswith(a + ".") and not a.startswith(b + ".")})
    assert not pairs, f"files importing each other: {pairs}"


def test_nothing_in_fer_hf_imports_scripts_benchmarks_or_the_space():
    bad = sorted((m, d) for m, deps in graph().items() for d in deps
                 if d.split(".")[0] in ("scripts", "benchmarks", "space", "app", "train", "evaluate", "predict"))
    assert not bad, bad

"""The package's shape: the rooms import only what the README's "Layout" allows, and no import cycle exists."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import REPO

PACKAGE = REPO / "gardener_hf"
# room -> rooms it may import (the core is everything directly in gardener_hf/)
ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "training": {"core", "data", "training"},
    "hub": {"core", "data", "training", "hub"},
    "research": {"core", "data", "training", "research"},
    "cli": {"core", "data", "training", "hub", "research", "cli"},
}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return (REPO / name.replace(".", "/") / "__init__.py").exists()


def _imports(name: str, tree: ast.Module) -> set[str]:
    """Package modules `name` imports anywhere (module level or inside functions), resolved to module names."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{node.module}" if node.module else anchor
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            while target and target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name:
                out.add(target)
    return out


def _room(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and _is_package(name)) else "core"


def test_every_room_imports_only_what_it_may():
    wrong = []
    for name, tree in MODULES.items():
        if name in ("gardener_hf.__main__",):  # the entry point runs the command line
            continue
        for target in _imports(name, tree):
            if name.startswith(target + "."):  # a package's own __init__
                continue
            if _room(target) not in ALLOWED[_room(name)]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_no_import_cycle_counting_function_level_imports():
    graph = {n: {t for t in _imports(n, tree) if not n.startswith(t + ".")} for n, tree in MODULES.items()}
    seen, stack, cycles = set(), [], []

    def visit(node, on_path):
        if node in on_path:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        on_path.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt, on_path)
        stack.pop()
        on_path.discard(node)

    for node in sorted(graph):
        visit(node, set())
    assert not cycles, cycles[:3]


@pytest.mark.parametrize("forbidden", ["argparse", "print", "basicConfig"])
def test_only_the_command_line_parses_prints_or_configures_logging(forbidden):
    offenders = []
    for name, tree in MODULES.items():
        if _room(name) == "cli" or name == "gardener_hf.__main__":
            continue
        for node in ast.walk(tree):
            hit = (
                (forbidden == "argparse" and isinstance(node, (ast.Import, ast.ImportFrom))
                 and "argparse" in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]))
                or (forbidden == "print" and isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print")
                or (forbidden == "basicConfig" and isinstance(node, ast.Attribute) and node.attr == "basicConfig")
            )
            if hit:
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders


def test_loggers_are_named_after_their_module():
    for name, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant):  # a literal may only address a package's logger tree
                    assert arg.value.split(".")[0] in ("gardener_hf", "transformers", "huggingface_hub"), f"{name}: {arg.value}"
                else:
                    assert isinstance(arg, ast.Name) and arg.id == "__name__" or isinstance(arg, ast.Call), name


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "gardener_hf", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().startswith("gardener_hf ")
    from gardener_hf import __version__

    assert result.stdout.strip() == f"gardener_hf {__version__}"


def test_old_module_paths_still_import_the_same_objects():
    import gardener_hf.finetune
    import gardener_hf.training
    from gardener_hf.cards import build_card
    from gardener_hf.digits import make_digit_dataset
    from gardener_hf.hub.cards import build_card as new_build_card
    from gardener_hf.research.synthetic import make_digit_dataset as new_make
    from gardener_hf.study import StudyConfig
    from gardener_hf.research.study import StudyConfig as NewStudyConfig
    from gardener_hf.surgery import load_model
    from gardener_hf.checkpoint import load_model as new_load_model

    assert gardener_hf.finetune is gardener_hf.training
    assert build_card is new_build_card and make_digit_dataset is new_make and StudyConfig is NewStudyConfig
    assert load_model is new_load_model
    import gardener_hf.video

    assert gardener_hf.video is sys.modules["gardener_hf.research.synthetic"]

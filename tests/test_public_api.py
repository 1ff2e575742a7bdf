"""The names outside code imports, and the shape of the tree: no import circle among the project's
modules (lazy imports inside functions included), no two modules with one file name, no private
Streamlit API, and core never imports Streamlit."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from core.paths import REPO_ROOT

PACKAGES = ("core", "dashboard", "scripts")


def test_public_imports():
    from core import load_predictor
    from core.data import generate_sequences, load_mnist, parse_lengths, split_arrays
    from core.evaluate import (
        compare_slices,
        digit_disagreements,
        digit_map,
        evaluate_sequences,
        evaluation_set,
        find_error_slices,
        headline_figures,
        suspect_labels,
    )
    from core.handwriting import read_digits

    assert all(callable(f) for f in (load_predictor, load_mnist, split_arrays, generate_sequences, parse_lengths,
                                     evaluation_set, evaluate_sequences, headline_figures, digit_map, read_digits,
                                     find_error_slices, compare_slices, digit_disagreements, suspect_labels))
    assert parse_lengths("1-3,5") == [1, 2, 3, 5]
    from core.data.sequences import generate_sequences as moved

    assert generate_sequences is moved  # one implementation, re-exported


def test_the_shims_are_gone():
    for name in ("slices", "label_issues", "embeddings", "sequences"):
        assert not (REPO_ROOT / "core" / f"{name}.py").exists(), name


def python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (REPO_ROOT / folder).rglob("*.py")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its file (top level or inside a function).
    `from a.b import c` counts as importing a.b.c when that is a module, else a.b."""
    files = {module_name(p): p for p in python_files(*PACKAGES)}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package upwards
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_circle_finder_finds_a_lazy_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "core.data.sequences" in graph["core.evaluate.tables"]  # a real edge is seen


def test_no_two_modules_share_a_file_name():
    names = Counter(p.name for p in python_files(*PACKAGES) if p.name != "__init__.py")
    assert not [name for name, n in names.items() if n > 1]


def test_the_dashboard_top_level_is_small():
    top = [p.name for p in (REPO_ROOT / "dashboard").glob("*.py") if p.name not in ("__init__.py", "app.py")]
    assert len(top) <= 6, top


def test_no_private_streamlit_api_and_core_never_imports_streamlit():
    for path in python_files(*PACKAGES):
        text = path.read_text()
        assert "streamlit.runtime" not in text and "PagesManager" not in text, path
        if path.is_relative_to(REPO_ROOT / "core"):
            assert "import streamlit" not in text, path


def test_dashboard_caches_live_in_data_and_ui_builders_hold_no_streamlit_state():
    for path in python_files("dashboard"):
        text = path.read_text()
        if "st.cache_" in text:
            assert path.parent.name == "data", path
        if path.parent.name == "ui":
            assert "import streamlit" not in text and "session_state" not in text, path


def test_the_published_label_errors_only_score_the_benchmark():
    """Northcutt et al.'s list of test label errors may score a ranking, never feed a model or a ranking."""
    graph = import_graph()
    readers = sorted(name for name, edges in graph.items() if "scripts.benchmark_ensemble" in edges)
    assert readers and all(name.startswith("scripts.benchmark") for name in readers), readers
    listed = "947, 1621, 1901"  # the list's first entries, as written there
    holders = [p for p in python_files(*PACKAGES) if listed in p.read_text()]
    assert holders == [REPO_ROOT / "scripts" / "benchmark_ensemble.py"], holders

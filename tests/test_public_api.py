"""The names outside code imports keep working after the move into packages, and the folder tree
shows the architecture: no file in core/, dashboard/ or scripts/ is over 300 lines, and no private
Streamlit API is used."""

from pathlib import Path

from core.paths import REPO_ROOT


def test_public_imports():
    from core import load_predictor
    from core.data import load_mnist, split_arrays
    from core.embeddings import digit_map
    from core.evaluate import evaluate_sequences, evaluation_set, headline_figures
    from core.handwriting import read_digits
    from core.sequences import generate_sequences, parse_lengths
    from core.slices import compare_slices, digit_disagreements, find_error_slices

    assert all(callable(f) for f in (load_predictor, load_mnist, split_arrays, generate_sequences, parse_lengths,
                                     evaluation_set, evaluate_sequences, headline_figures, digit_map, read_digits,
                                     find_error_slices, compare_slices, digit_disagreements))
    assert parse_lengths("1-3,5") == [1, 2, 3, 5]
    from core.data.sequences import generate_sequences as moved

    assert generate_sequences is moved  # one implementation, re-exported


def python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (REPO_ROOT / folder).rglob("*.py")]


def test_no_file_is_over_300_lines():
    long = {str(p.relative_to(REPO_ROOT)): n for p in python_files("core", "dashboard", "scripts")
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long


def test_no_private_streamlit_api_and_core_never_imports_streamlit():
    for path in python_files("core", "dashboard", "scripts"):
        text = path.read_text()
        assert "streamlit.runtime" not in text and "PagesManager" not in text, path
        if path.is_relative_to(REPO_ROOT / "core"):
            assert "import streamlit" not in text, path

"""digitsum core library (no Streamlit here). The public entry point is `load_predictor`:

    from core import load_predictor
    p = load_predictor("checkpoints/default.pt", device="auto")
"""

from core.constants import VERSION as __version__

__all__ = ["load_predictor", "__version__"]


def __getattr__(name):
    # Lazy re-export (PEP 562): `import core.data` stays cheap, torch loads only when the predictor is used.
    if name == "load_predictor":
        from core.predict import load_predictor

        return load_predictor
    raise AttributeError(f"module 'core' has no attribute {name!r}")

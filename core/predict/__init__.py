"""Prediction: `load_predictor` and the Predictor it returns (dedup of images, chunked CNN, head)."""

from core.predict.predictor import DEFAULT_CHECKPOINT, Prediction, Predictor, dedup_images, load_predictor

__all__ = ["DEFAULT_CHECKPOINT", "Prediction", "Predictor", "dedup_images", "load_predictor"]

"""The model: a CNN per digit image (cnn), a sequence head over its outputs (heads), and the
checkpoint format that carries both with their config (checkpoint)."""

from core.model.cnn import CNNEnsemble, DigitCNN
from core.model.heads import final_sums, has_distribution, make_head
from core.model.model_config import DEVICES, HEADS, ModelConfig, resolve_device
from core.model.net import DigitSumModel, count_parameters

__all__ = ["CNNEnsemble", "DEVICES", "DigitCNN", "DigitSumModel", "HEADS", "ModelConfig", "count_parameters",
           "final_sums", "has_distribution", "make_head", "resolve_device"]

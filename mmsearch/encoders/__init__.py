"""Models that turn decoded media and queries into vectors. Heavy libraries load lazily."""

from mmsearch.encoders.base import Encoder, ModelSpec
from mmsearch.encoders.registry import list_models, load_encoder, resolve_model

__all__ = ["Encoder", "ModelSpec", "list_models", "load_encoder", "resolve_model"]

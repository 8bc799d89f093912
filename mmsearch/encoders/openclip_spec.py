"""What an `open_clip` model spec names: its architecture and its weights (a tag or a file).

Its own module because both OpenCLIP back ends read it: the torch-free one (`openclip`) and the
torch one (`openclip_torch`), which must not import each other.
"""

from __future__ import annotations

from mmsearch.encoders.base import ModelSpec
from mmsearch.errors import ModelUnavailableError, UnknownModelError


def spec_weights(spec: ModelSpec) -> tuple[str, str]:
    """(architecture, pretrained tag or checkpoint path) of an `open_clip` spec, both given."""
    arch = str(spec.options.get("architecture") or "")
    pretrained = str(spec.options.get("pretrained") or "")
    if not arch:
        raise UnknownModelError(f"Model {spec.name!r} names no OpenCLIP architecture.")
    if not pretrained:
        # Random weights would index fine and find nothing; refuse instead.
        raise ModelUnavailableError(
            f"Model {spec.name!r} gives no weights for OpenCLIP {arch}: use "
            f"'open_clip:{arch}/TAG' or 'open_clip:{arch}@/path/to/checkpoint'."
        )
    return arch, pretrained


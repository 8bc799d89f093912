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



# -- which languages a model's text side reads ----------------------------------------------

ENGLISH = ("en",)

XLM_R_LANGUAGES = tuple(sorted({
    "af", "am", "ar", "as", "az", "be", "bg", "bn", "br", "bs", "ca", "cs", "cy", "da", "de",
    "el", "en", "eo", "es", "et", "eu", "fa", "fi", "fr", "fy", "ga", "gd", "gl", "gu", "ha",
    "he", "hi", "hr", "hu", "hy", "id", "is", "it", "ja", "jv", "ka", "kk", "km", "kn", "ko",
    "ku", "ky", "la", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr", "ms", "my", "nb", "ne",
    "nl", "no", "om", "or", "pa", "pl", "ps", "pt", "ro", "ru", "sa", "sd", "si", "sk", "sl",
    "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "th", "tl", "tr", "ug", "uk", "ur", "uz",
    "vi", "xh", "yi", "zh",
}))
"""XLM-RoBERTa's pretraining languages (CC-100, the XLM-R paper's table: 100 languages, some in
two scripts), as ISO 639-1 codes; Norwegian also as `nb`, the code the detector gives."""

_HF_TEXT_LANGUAGES: dict[str, tuple[str, ...] | None] = {
    "xlm-roberta-base": XLM_R_LANGUAGES,
    "xlm-roberta-large": XLM_R_LANGUAGES,
    "roberta-base": ENGLISH,
}
"""Hugging Face text towers open_clip builds, by repository name: what their languages are.
Others (mT5, NLLB: 100-200 languages) are not declared, so no query is refused for them."""


def text_languages(arch: str, text_cfg: dict[str, object]) -> tuple[str, ...] | None:
    """The languages (ISO 639-1) an OpenCLIP architecture's text side reads, from its open_clip
    config's `text_cfg` (plain data: no open_clip or torch needed to read the answer).

    - A Hugging Face text tower: as `_HF_TEXT_LANGUAGES` says for its tokenizer (XLM-R:
      multilingual; RoBERTa: English); None (not declared, nothing refused) for the others.
    - SigLIP's multilingual tokenizers (`-i18n-`, SigLIP 2's Gemma tokenizer): None.
    - Everything else uses CLIP's byte-pair tokenizer, learnt on English captions, with towers
      trained on English image-text pairs (OpenAI's, LAION-2B's English subset, DataComp):
      English.
    """
    hf_name = str(text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name") or "")
    if hf_name:
        return _HF_TEXT_LANGUAGES.get(hf_name.rstrip("/").rsplit("/", 1)[-1].lower())
    lowered = arch.lower()
    if "siglip" in lowered and ("i18n" in lowered or "siglip2" in lowered):
        return None
    return ENGLISH

"""Helpers for tests that need a real OpenCLIP architecture without pretrained weights.

No pretrained CLIP can be downloaded on the test machines, so tests build an
architecture-true model with random weights and save it where `open_clip:ARCH@/path` finds it.
"""

from __future__ import annotations

from pathlib import Path

# The smallest built-in open_clip config: a ViT-S/32 image tower (22.6M parameters) with a
# 10-layer, 256-wide text tower; 43M parameters in all (ViT-B-32 has 151M), 256-d embeddings.
# It is a plain `CLIP` (no timm, no Hugging Face tokenizer), the same code path as ViT-B-32.
SMALL_ARCH = "ViT-S-32-alt"
SMALL_ARCH_DIM = 256


def make_random_checkpoint(arch: str, path: str | Path, *, seed: int = 0) -> str:
    """Save a randomly initialised OpenCLIP `arch` as a checkpoint open_clip can load.

    The file is a plain `state_dict` saved with `torch.save`, which `open_clip.load_checkpoint`
    (used for `pretrained=/path/to/file`) accepts as is.

    Args:
        arch: An `open_clip.list_models()` name.
        path: Where to write the checkpoint (parent folders are created).
        seed: Seeds torch so the weights are the same on every run.

    Returns:
        The checkpoint's absolute path, as a string.
    """
    import open_clip
    import torch

    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    # pretrained_text=False: a Hugging Face text tower (xlm-roberta-...) is built from its config
    # alone, not from the hub's pretrained weights.
    model = open_clip.create_model(arch, pretrained=None, pretrained_text=False)
    torch.save(model.state_dict(), path)
    return str(path)


def shared_checkpoint(tmp_path_factory) -> str:
    """One small random checkpoint per test session, at one path, so every OpenCLIP test file
    reuses one ONNX export (an export takes about a minute)."""
    path = tmp_path_factory.getbasetemp() / "openclip-shared" / "ckpt.pt"
    if path.is_file():
        return str(path.resolve())
    return make_random_checkpoint(SMALL_ARCH, path)


def shared_model_cache(tmp_path_factory) -> str:
    """The model cache OpenCLIP tests export into: per session, never the user's cache."""
    path = tmp_path_factory.getbasetemp() / "openclip-shared" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


# -- an OpenCLIP model with a Hugging Face text tower: XLM-RoBERTa ---------------------------

XLMR_ARCH = "xlm-roberta-base-ViT-B-32"
XLMR_HF_NAME = "xlm-roberta-base"
_XLMR_REVISION = "0" * 40
# xlm-roberta-base's own config.json on the hub, every field that shapes the network: the test
# model is the real architecture (278M-parameter text tower, 250002-token vocabulary).
XLMR_CONFIG = {
    "architectures": ["XLMRobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 514, "model_type": "xlm-roberta",
    "num_attention_heads": 12, "num_hidden_layers": 12, "output_past": True, "pad_token_id": 1,
    "position_embedding_type": "absolute", "type_vocab_size": 1, "vocab_size": 250002,
}
_XLMR_CORPUS = """
a photo of a cat sleeping on the sofa . two dogs playing on the beach at sunset .
a cup of coffee on a wooden table . a rocket launch at night with smoke and fire .
portrait of an astronaut in a white space suit . how do I bake bread at home ?
mix flour water salt and yeast then knead the dough and bake it in the oven .
plant tomatoes and basil in the garden in spring . a red car parked in the street .
children riding bicycles in the park . a bowl of soup with noodles and vegetables .
an old man reading a newspaper on a bench . mountains covered with snow under a blue sky .
a black and white photograph of a city . people walking in the rain with umbrellas .
一只猫在沙发上睡觉 。 海滩上有两只狗在玩 。 桌子上有一杯咖啡 。 夜里发射的火箭 。
穿着白色宇航服的宇航员的肖像 。 在家里怎么烤面包 ？ 把面粉、水、盐和酵母混合 ， 然后揉面 。
春天在花园里种番茄和罗勒 。 街上停着一辆红色的汽车 。 孩子们在公园里骑自行车 。
一碗有面条和蔬菜的汤 。 一位老人坐在长椅上看报纸 。 蓝天下被雪覆盖的山 。 下雨天打着伞走路的人们 。
une tasse de café sur la table . un chat sur le canapé . Sterne und Planeten über Köln .
кошка на диване . 猫の写真 . 東京の夜景 . Ünïcödé café naïve façade
"""


def make_xlmr_hub_cache(root: str | Path) -> Path:
    """A Hugging Face cache holding `xlm-roberta-base`'s config and an XLM-R style tokenizer.

    The tokenizer is a SentencePiece Unigram model like XLM-R's (Metaspace `▁` word starts,
    `<s> $A </s>`, ids 0-3 for `<s> <pad> </s> <unk>`, `<mask>` last) learnt with `tokenizers`
    from a few hundred English, Chinese, Japanese, French, German and Russian words, so every
    test text has real pieces, not `<unk>`. The files sit in the hub cache's own layout
    (`models--NAME/snapshots/REV`, `refs/main`), as `hf download` leaves them.

    Returns:
        The cache folder (point `HF_HUB_CACHE` there).
    """
    import json

    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer

    root = Path(root)
    repo = root / f"models--{XLMR_HF_NAME}"
    snapshot = repo / "snapshots" / _XLMR_REVISION
    if (snapshot / "tokenizer.json").is_file():
        return root
    snapshot.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(Unigram())
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = UnigramTrainer(
        vocab_size=1000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>",
        show_progress=False,
    )
    lines = [line for line in _XLMR_CORPUS.splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines * 10, trainer)
    tokenizer.add_special_tokens(["<mask>"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tokenizer.save(str(snapshot / "tokenizer.json"))
    (snapshot / "config.json").write_text(json.dumps(XLMR_CONFIG, indent=2))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(_XLMR_REVISION)
    return root

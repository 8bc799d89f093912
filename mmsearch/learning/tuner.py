"""`mmsearch tune`: learn from the captions a collection already has, gate, and store.

Captions come from `captions.harvest_captions`:
- alt text of images embedded in the collection's Markdown notes: `![a red bicycle](bike.jpg)`;
- a sidecar `.txt` with the image's stem (`bike.jpg` -> `bike.txt`), and `.xmp` sidecars'
  `dc:description`;
- the image's own EXIF ImageDescription / XPComment, or XMP `dc:description`;
- a CSV of `path,caption` the user gives.

What is learnt:
- an adapter (`adapter.fit_adapter`): a ridge regression from an image's `visual` features (the
  classifier's pooled features, already in the catalog) onto the mean embedding of its
  captions, next to the label bridge; its cosine with the query is a third score in the
  reranker, and its best matches among every indexed image join the reranker's candidates
  (`Reranker.propose`). The captioned images themselves keep the vector a fit without them
  predicts (leave-one-out), so they are judged by what they show, like every other image.
  Closed form, under a second.
- for models whose regions are label codes (the offline default), the cross-attention head
  (`learning/head.py`), trained for a few epochs on the CPU (minutes).

The captioned images are dealt into `GATE_FOLDS` folds. Each adapter setting (strength and
weight) is judged on every caption, scored by an adapter fitted without that caption's fold, on
the candidates that adapter gives it at search time (the first stage's and its proposals); the
head is trained on four folds and judged on the fifth, next to the adapter chosen. Both are
compared with the untuned reranker (`Reranker` itself, on the first stage's top-N), and only a
gain in R@1 that chance would rarely give (`sign_test`, `GATE_P`) turns anything on: the head
is stored as measured, the adapter is fitted again on every caption with the strength that
won, and both go into the index folder with their provenance (`query/rerank.py:
TunedAdapter`). Otherwise any earlier tuning is left as it was and the report says why.

Licence: weights learnt here stay in the user's index folder. Weights the project ships must
be trained only on data whose licence allows it (flickr8k is research-only: measure with it,
never ship what it trained).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmsearch.encoders.base import SEMANTIC, VISUAL, Encoder, l2_normalise
from mmsearch.encoders.regions import LABEL_TOPK, PATCH_INT8
from mmsearch.learning.adapter import fit_adapter
from mmsearch.learning.captions import Caption
from mmsearch.query.head import HEAD_FILE, TOP_REGIONS, HeadScorer
from mmsearch.query.proposals import PooledRegions, TunedAdapter
from mmsearch.query.rerank import ADAPTED, REGION_WEIGHT, RERANK, Candidate, Reranker, fuse
from mmsearch.query.words import content_words, image_word_vectors
from mmsearch.store.catalog import Catalog

log = logging.getLogger(__name__)

GATE_FOLDS = 5
"""The captioned images are dealt into this many folds. The adapter is judged on every caption,
each scored by adapters fitted without its fold; the head is trained on four folds and judged
on the fifth. (A single held-out fifth was ~85 captions on tuxpaint, and its noise turned on
settings that cost 0.5-0.9 points R@1 on fresh images.)"""
GATE_P = 0.05
"""A setting turns on only if a gain in R@1 at least as large as the one seen would come by
chance less often than this (`sign_test`): the best of the 12 adapter settings tried beats the
untuned reranker on a few captions by luck alone."""
MIN_IMAGES = 20
"""Fewer captioned images than this teach nothing measurable: tune refuses."""
ADAPTER_WEIGHTS = (0.5, 1.0, 2.0, 3.0)
"""Fusion weights of the adapter's score tried on the held-out captions."""
ADAPTER_STRENGTHS = (5.0, 15.0, 50.0)
"""Ridge penalties per image (`fit_adapter`) tried on the held-out captions: on flickr8k_1k
(400 training images) 5 and 15 did best, 50 was about halfway back to no adapter."""
HEAD_EPOCHS = 4
"""Epochs of the head: on flickr8k_1k (one fold, 1,344 captions) 4 epochs gave held-out R@1
.126 against .114 after 8 (zero-shot .122): it overfits soon."""


@dataclass
class TuneReport:
    """What `tune` did, for the shells to show."""

    captions: int = 0
    images: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    held_out_captions: int = 0
    before: dict[str, float] = field(default_factory=dict)
    """Held-out R@1/R@5/R@10 of the reranker without the adapter."""
    after: dict[str, float] = field(default_factory=dict)
    """The same with the best adapter weight."""
    weight: float = 0.0
    """Fusion weight of the adapter's score (0: adapter off)."""
    head: bool = False
    """The trained head is on."""
    tried: dict[str, dict[str, float]] = field(default_factory=dict)
    """Held-out R@1/5/10 of every setting compared with `before`."""
    p_value: float = 1.0
    """`sign_test` of the best setting against `before` (see `GATE_P`)."""
    enabled: bool = False
    reason: str = ""
    seconds: float = 0.0

    @property
    def adapter(self) -> bool:
        return self.weight > 0





def sign_test(before: Sequence[int | None], after: Sequence[int | None]) -> float:
    """One-sided sign test on the captions whose top-1 changed: the chance of at least as many
    captions gaining their image at rank 1 (against those losing it) if neither were better."""
    gained = sum(1 for b, a in zip(before, after) if a == 0 and b != 0)
    lost = sum(1 for b, a in zip(before, after) if b == 0 and a != 0)
    n = gained + lost
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(gained, n + 1)) / 2**n


def recalls(ranks: Sequence[int | None]) -> dict[str, float]:
    n = max(1, len(ranks))
    return {
        f"R@{k}": round(sum(1 for r in ranks if r is not None and r < k) / n, 4) for k in (1, 5, 10)
    }


Entry = tuple[list[Candidate], dict[str, tuple[np.ndarray, dict[int, float]]]]
"""A caption's candidates (first-stage score and all) and the reranker's parts for them."""


class _KnownScores:
    """One caption's zero-shot scores (`Reranker.item_scores`) of the images met so far as
    candidates; the images the adapters propose are scored once, whichever setting met them."""

    def __init__(self, entry: Entry) -> None:
        candidates, parts = entry
        self.raw: dict[str, dict[int, float]] = {name: dict(raw) for name, (_, raw) in parts.items()}
        self.seen: set[int] = {item for item, _, _ in candidates}

    def parts(
        self, reranker: Reranker, text: str, vector: np.ndarray, items: Sequence[int]
    ) -> dict[str, tuple[np.ndarray, dict[int, float]]]:
        """The parts `Reranker.scores` would give these candidates (without an adapter)."""
        missing = [item for item in items if item not in self.seen]
        if missing:
            for name, raw in reranker.item_scores(text, vector, missing).items():
                self.raw.setdefault(name, {}).update(raw)
            self.seen.update(missing)
        return reranker.scores(text, vector, items, self.raw)


class Tuner:
    """Harvests captions, trains, gates and stores (see the module doc)."""

    def __init__(
        self,
        catalog: Catalog,
        encoder: Callable[[], Encoder],
        folder: Path,
        *,
        top_n: int = 50,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self._encoder = encoder
        self.folder = folder
        self.top_n = top_n
        self._say = progress or (lambda _msg: None)

    def run(self, captions: Iterable[Caption], *, seed: int = 0) -> TuneReport:
        started = time.perf_counter()
        report = TuneReport()
        captions = list(captions)
        by_path = self.catalog.db.execute(
            "SELECT id, path FROM items WHERE kind = 'image' AND status = 'ok'"
        ).fetchall()
        item_of = {path: item for item, path in by_path}
        captions = [c for c in captions if c.path in item_of]
        report.captions = len(captions)
        for c in captions:
            kind = c.source.split(":")[0]
            report.sources[kind] = report.sources.get(kind, 0) + 1
        items = sorted({item_of[c.path] for c in captions})
        report.images = len(items)
        if len(items) < MIN_IMAGES:
            report.reason = (
                f"only {len(items)} captioned image(s) found (need {MIN_IMAGES}): add alt text in "
                "Markdown notes, sidecar .txt files, EXIF descriptions, or give --captions FILE.csv"
            )
            report.seconds = time.perf_counter() - started
            return report

        # Every indexed image: first-stage (semantic) and visual vectors, in one order.
        all_items = [item for item, _ in by_path]
        semantic = self.catalog.item_vectors(all_items, SEMANTIC)
        visual = self.catalog.item_vectors(all_items, VISUAL)
        all_items = [i for i in all_items if i in semantic and i in visual]
        row_of = {item: n for n, item in enumerate(all_items)}
        sem = l2_normalise(np.stack([semantic[i].mean(axis=0) for i in all_items]))
        vis = np.stack([visual[i].mean(axis=0) for i in all_items]).astype(np.float32)
        vector_ids_of = self.catalog.item_vector_ids(all_items, VISUAL)
        vis_ids = [vector_ids_of.get(i, []) for i in all_items]  # each row's `visual` vector ids
        captions = [c for c in captions if item_of[c.path] in row_of]
        self._say(f"embedding {len(captions)} captions")
        encoder = self._encoder()
        texts = encoder.embed_texts([c.text for c in captions])
        owners = np.array([row_of[item_of[c.path]] for c in captions])
        first = texts @ sem.T
        rng = np.random.default_rng(seed)
        # Images (not captions) are dealt into folds, so no image is judged by an adapter that
        # saw its captions. Fold 0 is also the head's held-out part.
        fold_of = {int(o): n % GATE_FOLDS for n, o in enumerate(rng.permutation(np.unique(owners)))}
        fold = np.array([fold_of[int(o)] for o in owners])
        train_rows = np.where(fold != 0)[0]
        held_rows = np.where(fold == 0)[0]
        staged = self.folder / (HEAD_FILE + ".new")
        head_weight = self._train_head(
            encoder, captions, all_items, owners, first, train_rows, staged, seed=seed
        )

        # Every caption's candidates and zero-shot scores are computed once; each adapter
        # setting is then judged on every caption, scored by adapters fitted without its fold.
        self._say(f"judging the adapter on {len(captions)} captions, {GATE_FOLDS} folds")
        # As search does: the first stage's N and the pooled regions' proposals.
        zero_shot = Reranker(
            self.catalog, self._encoder, top_n=self.top_n, pooled=PooledRegions(self._encoder)
        )
        scored = [
            self._scored(zero_shot, c.text, texts[r], first[r], all_items, row_of)
            for r, c in enumerate(captions)
        ]
        # Each adapter also proposes images the first stage missed, as it does at search time
        # (`Reranker.propose`): those join the caption's candidates, so every setting is judged
        # on the candidates it would get. Zero-shot scores are kept per caption and image.
        known = [_KnownScores(entry) for entry in scored]
        # Every caption's entry is replaced below by the one its fold's adapter gives it.
        widened: dict[float, list[Entry]] = {strength: list(scored) for strength in ADAPTER_STRENGTHS}
        for f in range(GATE_FOLDS):
            fitted_on, judged = np.where(fold != f)[0], np.where(fold == f)[0]
            for strength in ADAPTER_STRENGTHS:
                adapter = fit_adapter(vis, texts[fitted_on], owners[fitted_on], strength=strength).adapter(
                    vis_ids, weight=1.0, region_weight=0.0
                )
                scorer = Reranker(self.catalog, self._encoder, top_n=self.top_n, adapter=adapter)
                for r in judged:  # the adapter's proposals, as at search time
                    head = scored[r][0]
                    proposed = scorer.propose(captions[r].text, texts[r], None, {item for item, _, _ in head})
                    extra = [row_of[i] for i in proposed if i in row_of]
                    candidates = head + [
                        (all_items[i], float(first[r][i]), {SEMANTIC: float(first[r][i])}) for i in extra
                    ]
                    ids = [item for item, _, _ in candidates]
                    parts = known[r].parts(zero_shot, captions[r].text, texts[r], ids)
                    adapted = scorer.adapter_scores(captions[r].text, texts[r], ids)
                    if adapted is not None:
                        parts[ADAPTED] = adapted
                    widened[strength][r] = (candidates, parts)
        targets = [all_items[o] for o in owners]

        def ranks(
            rows: Sequence[int], entries: Sequence[Entry], adapter_weight: float, region_weight: float,
        ) -> list[int | None]:
            out: list[int | None] = []
            for r, (head, parts) in zip(rows, entries):
                ranked = fuse(head, parts, {RERANK: region_weight, ADAPTED: adapter_weight}) or head
                order = [item for item, _, _ in ranked]
                out.append(order.index(targets[r]) if targets[r] in order else None)
            return out

        every = range(len(captions))
        untuned = ranks(every, scored, 0.0, REGION_WEIGHT)
        report.before = recalls(untuned)
        report.held_out_captions = len(captions)
        strength, weight, best, best_ranks = ADAPTER_STRENGTHS[0], 0.0, report.before, untuned
        for s in ADAPTER_STRENGTHS:
            for w in ADAPTER_WEIGHTS:
                got_ranks = ranks(every, widened[s], w, REGION_WEIGHT)
                got = recalls(got_ranks)
                label = f"zero-shot, adapter strength {s:g} weight {w:g}"
                report.tried[label] = got
                self._say(f"{label}: held-out {got} (untuned: {report.before})")
                # R@1 alone decides: a tie broken by R@5 once let through an adapter that
                # lowered R@1 on fresh images (flickr8k, one fold: 0.122 -> 0.106).
                if got["R@1"] > best["R@1"]:
                    strength, weight, best, best_ranks = s, w, got, got_ranks
        report.p_value = sign_test(untuned, best_ranks)
        seen = best
        if weight > 0 and report.p_value > GATE_P:
            self._say(f"the adapter's gain could be chance (p = {report.p_value:.2f}): left off")
            strength, weight, best = ADAPTER_STRENGTHS[0], 0.0, report.before
        report.after = best
        report.weight = weight

        if head_weight is not None:  # judged on fold 0, next to the adapter chosen above
            # The head on the candidates the chosen adapter (if any) gives, with its part.
            with_head = TunedAdapter.without_map(REGION_WEIGHT, head=HeadScorer(staged))
            probe = Reranker(self.catalog, self._encoder, top_n=self.top_n, adapter=with_head)
            base = [widened[strength][r] if weight > 0 else scored[r] for r in held_rows]
            headed: list[Entry] = []
            for r, (candidates, parts) in zip(held_rows, base):
                head_parts = probe.scores(captions[r].text, texts[r], [item for item, _, _ in candidates])
                if ADAPTED in parts:
                    head_parts[ADAPTED] = parts[ADAPTED]
                headed.append((candidates, head_parts))
            without = ranks(held_rows, base, weight, REGION_WEIGHT)
            with_it = ranks(held_rows, headed, weight, float(head_weight))
            label = f"head, adapter strength {strength:g} weight {weight:g}"
            report.tried[label] = recalls(with_it)
            p_head = sign_test(without, with_it)
            self._say(f"{label}: held-out {recalls(with_it)} (without the head: {recalls(without)})")
            if recalls(with_it)["R@1"] > recalls(without)["R@1"] and p_head <= GATE_P:
                report.head = True
                untuned_held = ranks(held_rows, [scored[r] for r in held_rows], 0.0, REGION_WEIGHT)
                report.before, report.after = recalls(untuned_held), recalls(with_it)
                report.held_out_captions, report.p_value = len(held_rows), p_head
        if not (report.head or report.adapter):
            staged.unlink(missing_ok=True)
            report.reason = (
                "neither the head nor the adapter raised held-out R@1 by more than chance "
                f"(best seen {report.before['R@1']:.3f} -> {seen['R@1']:.3f}"
                + (f", p = {report.p_value:.2f}" if seen is not report.before else "")
                + "); nothing was changed"
            )
            report.seconds = time.perf_counter() - started
            return report

        # The head stored is the one the held-out captions measured. The adapter is fitted
        # again on every caption with the strength that won: a ridge fit has no training
        # randomness, and the held-out fifth of the images is a fifth more to learn from.
        region_weight = float(head_weight) if report.head else REGION_WEIGHT
        if report.adapter:
            adapter = fit_adapter(vis, texts, owners, strength=strength).adapter(
                vis_ids, weight=report.weight, region_weight=region_weight
            )
            adapter.images.refresh(adapter, self.catalog)  # stored with it: searches start mapped
        else:
            adapter = TunedAdapter.without_map(region_weight)
        adapter.save(
            self.folder,
            {
                "what": ("cross-attention head (rerank-head.onnx) " if report.head else "")
                + ("ridge adapter visual -> semantic" if report.adapter else ""),
                "model": encoder.spec.name,
                "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "captions": report.captions,
                "images": report.images,
                "sources": report.sources,
                "trained_on_captions": len(train_rows),
                "held_out_captions": report.held_out_captions,
                "held_out_before": report.before,
                "held_out_after": report.after,
                "region_weight": adapter.region_weight,
                "adapter_weight": report.weight,
                "adapter_strength": strength if report.adapter else None,
                "adapter_fitted_on_captions": report.captions if report.adapter else 0,
                "adapter_left_out_images": len(np.unique(owners)) if report.adapter else 0,
                "head_epochs": HEAD_EPOCHS,
                "seed": seed,
                "licence_note": "learnt from this collection's own captions; stays in this index",
            },
            head=staged if report.head else None,
        )
        staged.unlink(missing_ok=True)
        report.enabled = True
        report.reason = (
            f"held-out R@1 {report.before['R@1']:.3f} -> {report.after['R@1']:.3f} "
            f"(p = {report.p_value:.3f}): "
            + " and ".join(n for n, on in (("the head", report.head), ("the adapter", report.adapter)) if on)
            + " turned on"
        )
        report.seconds = time.perf_counter() - started
        return report

    def _train_head(
        self, encoder: Encoder, captions: Sequence[Caption], items: Sequence[int],
        owners: np.ndarray, first: np.ndarray, rows: np.ndarray, target: Path, *, seed: int,
    ) -> float | None:
        """Train the cross-attention head on captions `rows` and export it to `target`; returns
        its fusion weight, or None when this model's regions cannot feed a head (label codes
        without the label bridge, mixed region shapes, images without regions)."""
        from mmsearch.learning.head import LabelCodes, TrainingRegions, export_head, train_head

        labels = getattr(encoder, "label_vectors", None)  # the offline label bridge
        # Candidates among the training images only (an image seen only as a negative is
        # learnt to be nobody's answer: held-out R@1 0.004 when the held-out images were), as
        # many as the reranker sees; captions whose image the first stage missed cannot be
        # reranked up. Only those images' regions are read (OpenCLIP's are 8 KB each).
        allowed = np.unique(owners[rows])
        codes = self.catalog.item_regions([items[i] for i in allowed])
        shapes = {(c.format, c.count, c.width) for c in codes.values()}
        fmt, count, width = shapes.pop() if len(shapes) == 1 else ("", 0, 0)
        readable = fmt == PATCH_INT8 or (fmt == LABEL_TOPK and labels is not None)
        if len(codes) != len(allowed) or not readable or count < TOP_REGIONS:
            self._say("this model's regions cannot feed the head: only the adapter is trained")
            return None
        regions: TrainingRegions
        if fmt == PATCH_INT8:  # OpenCLIP's patch regions
            regions = np.stack([codes[items[i]].vectors() for i in allowed])
        else:
            decoded = [codes[items[i]].label_topk() for i in allowed]
            regions = LabelCodes(labels, np.stack([ids for ids, _ in decoded]), np.stack([w for _, w in decoded]))
        words = [content_words(captions[r].text) for r in rows]
        keep = np.array([bool(w) for w in words])
        masked = np.full((len(rows), first.shape[1]), -np.inf, np.float32)
        masked[:, allowed] = first[rows][:, allowed]
        n = min(self.top_n, len(allowed))
        candidates = np.argsort(-masked, axis=1, kind="stable")[:, :n]
        keep &= (candidates == owners[rows][:, None]).any(axis=1)
        if keep.sum() < MIN_IMAGES:
            return None
        vectors = [
            image_word_vectors(encoder, words[i])
            for i in np.where(keep)[0]
        ]
        self._say(f"training the head on {int(keep.sum())} captions")
        head, weight = train_head(  # images numbered by their place in `allowed`
            regions, vectors, np.searchsorted(allowed, owners[rows][keep]),
            np.searchsorted(allowed, candidates[keep]),
            np.take_along_axis(first[rows], candidates, axis=1)[keep],
            region_weight=REGION_WEIGHT, epochs=HEAD_EPOCHS, seed=seed,
        )
        export_head(head, target, (count, width))
        return weight

    def _scored(
        self, reranker: Reranker, text: str, vector: np.ndarray, first: np.ndarray,
        items: Sequence[int], row_of: dict[int, int],
    ) -> tuple[list[Candidate], dict[str, tuple[np.ndarray, dict[int, float]]]]:
        """A caption's first-stage top-N over every image plus the reranker's proposals, and
        the reranker's scores of them."""
        order = list(np.argsort(-first)[: self.top_n])
        proposed = reranker.propose(text, vector, None, {items[i] for i in order})
        order += [row_of[item] for item in proposed if item in row_of]
        head: list[Candidate] = [(items[i], float(first[i]), {SEMANTIC: float(first[i])}) for i in order]
        return head, reranker.scores(text, vector, [item for item, _, _ in head])


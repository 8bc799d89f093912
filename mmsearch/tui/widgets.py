"""The main screen's widgets: the result rows, the status line, the filter and indexing panels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, OptionList, ProgressBar, Static

from mmsearch.media.kinds import AUDIO, IMAGE, TEXT, VIDEO
from mmsearch.present import format_elapsed, short_path, time_range
from mmsearch.results import Hit
from mmsearch.tui.request import Filters

KIND_ICONS = {IMAGE: "▣", TEXT: "¶", AUDIO: "♪", VIDEO: "▶"}
KIND_STYLES = {IMAGE: "bold magenta", TEXT: "bold cyan", AUDIO: "bold green", VIDEO: "bold yellow"}
_EIGHTHS = " ▏▎▍▌▋▊▉█"






def score_bar(fraction: float, width: int = 8) -> str:
    """A bar `width` cells wide filled to `fraction` (0..1), in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def bar_fractions(hits: Sequence[Hit]) -> list[float]:
    """How full each hit's bar is: its score (calibrated 0-1, or a cosine), or, when several
    spaces of an uncalibrated model were fused (the score is then a rank score), its score
    relative to the best."""
    if getattr(hits, "calibrated", False):
        return [h.score for h in hits]
    if any(len(h.scores) > 1 for h in hits):
        top = max((h.score for h in hits), default=0.0) or 1.0
        return [h.score / top for h in hits]
    return [h.score for h in hits]






class ResultList(OptionList):
    """One line per hit: score bar and score, kind icon, file name, folder, and for sounds the
    time range. (An OptionList, not a DataTable: it draws 50 rows about three times faster,
    which is most of a keystroke's time on a large collection.)"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "app.focus_search", "Search"),
        Binding("enter", "app.open", "Open", show=False),  # a click only selects
    ]

    def show(self, hits: Sequence[Hit]) -> None:
        width = max(self.size.width - 4, 60)
        names = [os.path.basename(h.path) for h in hits]
        name_width = min(max((len(n) for n in names), default=10), max(16, width // 3))
        where_width = 11 if any(h.start is not None for h in hits) else 0
        folder_width = max(8, width - 14 - 3 - name_width - 2 - where_width - 2)
        prompts = []
        for hit, name, fraction in zip(hits, names, bar_fractions(hits)):
            line = Text(score_bar(fraction), style="green", no_wrap=True, overflow="ellipsis")
            line.append(f" {hit.score:5.3f} ", style="dim")
            line.append(KIND_ICONS.get(hit.kind, "?"), style=KIND_STYLES.get(hit.kind, ""))
            line.append(" " + _fit(name, name_width) + "  ", style="bold")
            line.append(_fit(short_path(os.path.dirname(hit.path)), folder_width, left=True), style="dim")
            if hit.start is not None:
                line.append("  " + time_range(hit.start, hit.end), style="yellow")
            prompts.append(line)
        keep = self.highlighted_path
        self.clear_options()
        self.add_options(prompts)
        self.paths = [h.path for h in hits]
        if prompts:
            # The same file stays selected when the list is redrawn around it (new items
            # committed by an indexing run, a filter that keeps it); a new query starts on top.
            self.highlighted = self.paths.index(keep) if keep in self.paths else 0

    @property
    def highlighted_path(self) -> str | None:
        index = self.highlighted
        paths = getattr(self, "paths", [])
        return paths[index] if index is not None and index < len(paths) else None

    def row_text(self, index: int) -> str:
        """Row `index` as drawn (plain text)."""
        return str(self.get_option_at_index(index).prompt)


def _fit(text: str, width: int, left: bool = False) -> str:
    """`text` padded or cut to `width` cells; `left` cuts the start (a folder's end says most)."""
    if len(text) <= width:
        return text.ljust(width)
    return ("…" + text[len(text) - width + 1 :]) if left else (text[: width - 1] + "…")


class StatusLine(Widget):
    """How many matched, how long it took, the model and the index; or what went wrong.

    One line of fixed height that repaints without a layout pass (a Static's update re-lays out
    the whole screen, which would cost every keystroke a few milliseconds)."""

    DEFAULT_CSS = "StatusLine { height: 1; }"

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._text = Text(text)
        self.live = False
        """Following the folders (F6): said on every results line."""

    def render(self) -> Text:
        return self._text

    def update(self, text: Text | str) -> None:
        self._text = text if isinstance(text, Text) else Text(text)
        self.refresh()

    def results(self, count: int, seconds: float, model: str, index: str, filters: str) -> None:
        text = Text()
        text.append(f"{count} match{'es' if count != 1 else ''}", style="bold")
        text.append(f" · {format_elapsed(seconds)} · model {model} · index {short_path(index)}")
        if filters:
            text.append(f" · {filters}", style="yellow")
        if self.live:
            text.append(" · live", style="green")
        self.update(text)

    def say(self, message: str, style: str = "") -> None:
        self.update(Text(message, style=style))


class FilterPanel(Vertical):
    """Kinds, folder, extension and the minimum score; every change searches again."""

    class Changed(Message):
        def __init__(self, filters: Filters) -> None:
            super().__init__()
            self.filters = filters

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.min_score: float | None = None
        self.model_cutoff: float | None = None
        """The cut-off the last search used when none was set here: where + and - start."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Checkbox("1 images", id="kind-image")
            yield Checkbox("2 text", id="kind-text")
            yield Checkbox("3 sounds", id="kind-audio")
            yield Checkbox("4 videos", id="kind-video")
            yield Label(self._min_label(), id="filter-min")
        with Horizontal(classes="row"):
            yield Input(placeholder="only under folder, e.g. ~/Pictures/2023", id="filter-folder")
            yield Input(placeholder="only extensions, e.g. jpg png", id="filter-ext")

    def _min_label(self) -> str:
        value = "model default" if self.min_score is None else f"{self.min_score:.2f}"
        return f"min score: {value}   (+ / - to change, 0 clears all)"

    @property
    def filters(self) -> Filters:
        kinds = tuple(k for k in (IMAGE, TEXT, AUDIO, VIDEO) if self.query_one(f"#kind-{k}", Checkbox).value)
        folder = self.query_one("#filter-folder", Input).value.strip()
        exts = self.query_one("#filter-ext", Input).value.replace(",", " ").split()
        return Filters(
            kinds=kinds,
            folders=(os.path.expanduser(folder),) if folder else (),
            extensions=tuple(e.lstrip(".").lower() for e in exts),
            min_score=self.min_score,
        )

    def toggle_kind(self, kind: str) -> None:
        box = self.query_one(f"#kind-{kind}", Checkbox)
        box.value = not box.value

    def nudge_min_score(self, step: float) -> None:
        base = self.min_score if self.min_score is not None else self.model_cutoff
        if base is None:
            base = 0.5  # no search yet: the calibrated models' default
        self.min_score = round(max(-1.0, min(1.0, base + step)), 2)
        self.query_one("#filter-min", Label).update(self._min_label())
        self.post_message(self.Changed(self.filters))

    def clear(self) -> None:
        with self.prevent(Checkbox.Changed, Input.Changed):
            for kind in (IMAGE, TEXT, AUDIO, VIDEO):
                self.query_one(f"#kind-{kind}", Checkbox).value = False
            self.query_one("#filter-folder", Input).value = ""
            self.query_one("#filter-ext", Input).value = ""
        self.min_score = None
        self.query_one("#filter-min", Label).update(self._min_label())
        self.post_message(self.Changed(self.filters))

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.filters))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.filters))


class IndexPanel(Vertical):
    """An indexing run: progress bar, files/s, ETA, the file being read, skipped files."""

    class CancelPressed(Message):
        pass

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield ProgressBar(id="index-bar", show_eta=False)
            yield Button("Cancel (x)", id="index-cancel", variant="error")
        yield Static("", id="index-line")
        yield Static("", id="index-skipped")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.CancelPressed())

    def progress(self, done: int, total: int, line: str) -> None:
        self.query_one("#index-bar", ProgressBar).update(total=max(total, 1), progress=done)
        self.query_one("#index-line", Static).update(Text(line))

    def finished(self, line: str, skipped: Sequence[tuple[str, str]]) -> None:
        self.query_one("#index-cancel", Button).display = False
        self.query_one("#index-line", Static).update(Text(line))
        shown = Text()
        for path, reason in list(skipped)[:5]:
            shown.append(f"skipped {short_path(path)}: {reason}\n", style="yellow")
        if len(skipped) > 5:
            shown.append(f"... and {len(skipped) - 5} more (mmsearch info --errors)", style="yellow")
        self.query_one("#index-skipped", Static).update(shown)

"""The terminal UI (`mmsearch tui`): a Textual shell over `Library`, with no search logic of its own.

`make_app()` builds the app for the CLI, the tests and the benchmark alike. Importing this package
imports Textual but not the engine: the index is opened and the model loaded in a worker, after the
first frame is drawn.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmsearch.tui.app import MmsearchApp

__all__ = ["make_app"]


def make_app(
    index: str | os.PathLike[str] | None = None,
    *,
    settings: Any | None = None,
    debounce: float | None = None,
) -> MmsearchApp:
    """The TUI app for the index at `index` (default: the configured one).

    Args:
        index: the index folder; None uses `settings.index_path()`.
        settings: `mmsearch.config.Settings` to use (default: read from config and environment
            when the app starts, in a worker).
        debounce: seconds of quiet after a keystroke before searching (default 0: at once;
            searches never pile up, see `MmsearchApp._search_now`).
    """
    # textual-image asks the terminal which image protocol it speaks (kitty, sixel, or half
    # blocks) when imported, which it cannot do once Textual owns the terminal: import it first.
    import textual_image.widget  # noqa: F401

    from mmsearch.tui.app import MmsearchApp

    return MmsearchApp(index=index, settings=settings, debounce=debounce)

"""The app's keys: its bindings and the help screen's account of them, side by side so that
one is changed with the other."""

from __future__ import annotations

from textual.binding import Binding, BindingType

HELP_SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Searching", [
        ("type", "search as you type: text, weights 2:\"red car\", negatives -night"),
        ("paste / drop", "an image or sound file path: search by that example (mix with text)"),
        ("ctrl+l  m", "more like this: search by the selected image or sound"),
        ("↓  enter  esc", "from the search box to the results"),
        ("/", "back to the search box"),
        ("ctrl+u", "clear the search box"),
    ]),
    ("The selected result", [
        ("↑ ↓  pgup pgdn", "move through the results (the preview follows)"),
        ("ctrl+o  o", "open with the system's default application"),
        ("r", "reveal: open its folder"),
        ("c", "copy its path"),
        ("p", "play a sound (again: stop)"),
    ]),
    ("Filters", [
        ("ctrl+f  f", "show or hide the filter panel"),
        ("1  2  3  4", "only images / text / sounds / videos (toggle)"),
        ("+  -", "raise / lower the minimum score"),
        ("0", "clear all filters"),
    ]),
    ("Index", [
        ("ctrl+n  i", "index a folder (Tab completes the path)"),
        ("x", "cancel indexing (what was committed stays searchable)"),
        ("f6  w", "follow the folders: files are indexed as they land (live)"),
    ]),
    ("App", [
        ("f1  ?", "this help"),
        ("ctrl+q  q", "quit"),
    ]),
]

BINDINGS: list[BindingType] = [
    Binding("ctrl+l", "more_like_this", "More like this"),
    Binding("ctrl+o", "open", "Open"),
    Binding("ctrl+f", "toggle_filters", "Filters"),
    Binding("ctrl+n", "add_folder", "Index folder"),
    Binding("f1", "help", "Help"),
    Binding("ctrl+q", "quit", "Quit", priority=True),
    Binding("question_mark", "help", "Help", show=False),
    Binding("q", "quit", "Quit", show=False),
    Binding("m", "more_like_this", "More like this", show=False),
    Binding("o", "open", "Open", show=False),
    Binding("r", "reveal", "Reveal", show=False),
    Binding("c", "copy_path", "Copy path", show=False),
    Binding("p", "play", "Play", show=False),
    Binding("f", "toggle_filters", "Filters", show=False),
    Binding("i", "add_folder", "Index folder", show=False),
    Binding("x", "cancel_index", "Cancel indexing", show=False),
    Binding("f6,w", "toggle_watch", "Follow folders", show=False),
    Binding("1", "toggle_kind('image')", "Images", show=False),
    Binding("2", "toggle_kind('text')", "Text", show=False),
    Binding("3", "toggle_kind('audio')", "Sounds", show=False),
    Binding("4", "toggle_kind('video')", "Videos", show=False),
    Binding("plus,equals_sign", "min_score(0.05)", "Raise min score", show=False),
    Binding("minus", "min_score(-0.05)", "Lower min score", show=False),
    Binding("0", "clear_filters", "Clear filters", show=False),
]

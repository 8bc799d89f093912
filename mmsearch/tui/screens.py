"""Modal screens: help, adding a folder to index, and problems that need a decision."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Static


class PathSuggester(Suggester):
    """Completes a folder path as it is typed (→ or Tab accepts), like a shell's Tab."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        parent, stem = os.path.split(expanded)
        try:
            names = sorted(
                e.name for e in os.scandir(parent or ".")
                if e.is_dir() and e.name.startswith(stem) and not (e.name.startswith(".") and not stem.startswith("."))
            )
        except OSError:
            return None
        if not names or (names[0] == stem and len(names) == 1):
            return None
        return value + names[0][len(stem) :] + ("/" if names[0] != stem else "")


class HelpScreen(ModalScreen[None]):
    """Every binding, grouped, with what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, sections: Iterable[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Label("mmsearch — keys", classes="panel-title")
            for title, rows in self.sections:
                table = Table(title=title, title_justify="left", box=None, show_header=False)
                table.add_column(style="bold cyan", no_wrap=True, min_width=14)
                table.add_column()
                for keys, what in rows:
                    table.add_row(keys, what)
                yield Static(table)
            yield Static(
                Text(
                    "In the search box: text in the CLI's syntax (2:\"red car\" street -night); "
                    "paste or drop an image or sound file to search by example; combine both. "
                    "The mouse works too: click a row, scroll, click buttons.",
                    style="dim",
                )
            )
            yield Button("Close (Esc)", id="help-close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


class AddFolderScreen(ModalScreen[str | None]):
    """Ask for a folder to index, with completion; returns the path or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"), Binding("tab", "complete", "Complete", show=False)]

    def __init__(self, start: str = "") -> None:
        super().__init__()
        self.start = start

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Index a folder", classes="panel-title")
            yield Label("Its images, sounds and documents become searchable (Tab completes).")
            yield Input(self.start, placeholder="~/Pictures", suggester=PathSuggester(), id="folder-input")
            yield Static("", id="folder-problem")
            with Horizontal(classes="buttons"):
                yield Button("Index", id="folder-ok", variant="primary")
                yield Button("Cancel", id="folder-cancel")

    def action_complete(self) -> None:
        box = self.query_one(Input)
        if box._suggestion:
            box.value = box._suggestion
            box.cursor_position = len(box.value)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        value = self.query_one(Input).value.strip()
        path = os.path.abspath(os.path.expanduser(value)) if value else ""
        if not path or not os.path.exists(path):
            self.query_one("#folder-problem", Static).update(
                Text(f"{value or 'Nothing'}: no such folder; type an existing one.", style="red")
            )
            return
        self.dismiss(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "folder-ok":
            self._submit()
        else:
            self.dismiss(None)


class ProblemScreen(ModalScreen[str]):
    """A problem the user must decide about: the message, and one button per way out.

    Returns the id of the chosen button."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave", "Close")]

    def __init__(self, title: str, message: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="problem"):
            yield Label(self.title_text, classes="panel-title")
            yield Static(Text(self.message), id="problem-message")
            with Horizontal(classes="buttons"):
                for i, (choice, label) in enumerate(self.choices):
                    yield Button(label, id=choice, variant="primary" if i == 0 else "default")

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    def action_leave(self) -> None:
        self.dismiss(self.choices[-1][0])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "")

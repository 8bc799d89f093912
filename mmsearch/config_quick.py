"""The settings of a cold search, read without pydantic: the same sources as `config.Settings`
(defaults, `config.toml`, `MMSEARCH_*`, the command's options), the same values, and the full
model's validation, with its messages, whenever a value is anything but plainly valid.

Importing pydantic and pydantic-settings and building the model was ~80 ms CPU of a ~360 ms
cold search (ARCHITECTURE.md, "The CLI's cold path"). The fields, their types, defaults and
bounds come from `config_fields.FIELDS`, a table generated from the model
(`python -m mmsearch.config_quick` writes it; a test checks it is the model's).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.config_fields import FIELDS
from mmsearch.config_sources import (
    CLI_NAMES,
    FIELD_CHECKS,
    SettingsPaths,
    check_home,
    env_names,
    index_source,
    read_config_file,
)

if TYPE_CHECKING:
    from mmsearch.config import Settings

_WHOLE = re.compile(r"0|[1-9][0-9]{0,17}")
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


class _Unsure(Exception):
    """A value the quick reader does not take as certainly valid: the full model decides."""


class QuickSettings(SettingsPaths):
    """The values `Settings` would hold, as plain attributes (`settings.batch_size`), with its
    `index_path()`, `model_cache()` and `workers()`. Anything more asks the full model."""

    def __init__(self, values: dict[str, Any], source: str | None) -> None:
        self.__dict__.update(values)
        self._index_source = source

    def full(self) -> Settings:
        """The same values as a validated `config.Settings`."""
        from mmsearch.config import Settings

        settings = Settings(**{name: getattr(self, name) for name in FIELDS})
        settings._index_source = self._index_source
        return settings

    def model_dump(self, **options: Any) -> dict[str, Any]:
        return self.full().model_dump(**options)

    def with_overrides(self, **changes: Any) -> Any:
        return self.full().with_overrides(**changes)

    def __repr__(self) -> str:
        shown = " ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS)
        return f"QuickSettings({shown})"


def load_settings(*, from_cli: bool = False, **overrides: Any) -> QuickSettings | Settings:
    """What `config.load_settings` returns, read without pydantic when every value is plainly
    valid; otherwise `config.load_settings` itself (which raises its `ConfigError`s).

    Raises:
        ConfigError: as `config.load_settings`.
    """
    check_home()
    init = {name: value for name, value in overrides.items() if value is not None}
    try:
        values = _read(init, read_config_file())
    except _Unsure:
        from mmsearch.config import load_settings as full_load

        return full_load(from_cli=from_cli, **overrides)
    settings = QuickSettings(values, index_source(init, values["index"]))
    token = CLI_NAMES.set(from_cli)
    try:
        settings.index_path()  # refuse an index path that names a file now, not later
    finally:
        CLI_NAMES.reset(token)
    return settings


def _read(init: dict[str, Any], toml: dict[str, Any]) -> dict[str, Any]:
    """Each field's value from the source that wins (options, environment, file, default).

    Raises:
        _Unsure: a value, a name or a source the full model might read differently.
    """
    if not set(init) <= set(FIELDS) or not set(toml) <= set(FIELDS):
        raise _Unsure  # keys the model ignores or matches in other ways
    values = {}
    for name, (kind, _, default, rules) in FIELDS.items():
        names = env_names(name)
        if len(names) > 1:
            raise _Unsure  # the same variable in two spellings: the model picks one
        if name in init:
            value = _typed(kind, init[name])
        elif names:
            value = _from_text(kind, os.environ[names[0]])
        elif name in toml:
            value = _typed(kind, toml[name])
        else:
            values[name] = default
            continue
        _check_rules(value, rules)
        if name in FIELD_CHECKS:
            try:
                value = FIELD_CHECKS[name](value)
            except ValueError:
                raise _Unsure from None
        values[name] = value
    return values


def _typed(kind: str, value: Any) -> Any:
    """A value as the model holds it, from one already typed (TOML, an option), or _Unsure."""
    if kind == "path" and isinstance(value, Path):
        return value
    if kind == "path" and type(value) is str and value:
        return Path(value)
    if kind in ("str", "choice") and type(value) is str:
        return value
    if kind == "int" and type(value) is int:
        return value
    if kind == "float" and type(value) is float and math.isfinite(value):
        return value
    if kind == "float" and type(value) is int and abs(value) < 2**53:
        return float(value)
    if kind == "bool" and type(value) is bool:
        return value
    raise _Unsure


def _from_text(kind: str, text: str) -> Any:
    """A value as the model holds it, from an environment variable's text, or _Unsure."""
    if kind == "path":
        return Path(text)
    if kind in ("str", "choice"):
        return text
    if kind == "int" and _WHOLE.fullmatch(text):
        return int(text)
    if kind == "float" and _DECIMAL.fullmatch(text):
        return float(text)
    if kind == "bool" and text in _BOOLS:
        return _BOOLS[text]
    raise _Unsure


def _check_rules(value: Any, rules: dict[str, Any]) -> None:
    if "choices" in rules and value not in rules["choices"]:
        raise _Unsure
    if "ge" in rules and not value >= rules["ge"]:
        raise _Unsure
    if "gt" in rules and not value > rules["gt"]:
        raise _Unsure
    if "le" in rules and not value <= rules["le"]:
        raise _Unsure
    if "lt" in rules and not value < rules["lt"]:
        raise _Unsure


# -- the table, derived from the model ------------------------------------------------------------


def field_table() -> dict[str, tuple[str, bool, Any, dict[str, Any]]]:
    """`config.Settings`'s fields as (kind, optional, default, rules): what `config_fields`
    must hold.

    Raises:
        TypeError: a field of a type the quick reader does not know (teach it `_typed` and
            `_from_text` first).
    """
    from typing import Literal, Union, get_args, get_origin

    from annotated_types import Ge, Gt, Le, Lt

    from mmsearch.config import Settings

    kinds = {Path: "path", str: "str", int: "int", float: "float", bool: "bool"}
    table = {}
    for name, info in Settings.model_fields.items():
        annotation, optional = info.annotation, False
        if get_origin(annotation) in (Union, type(int | None)):
            args = [a for a in get_args(annotation) if a is not type(None)]
            optional = len(args) < len(get_args(annotation))
            if len(args) != 1:
                raise TypeError(f"Settings.{name}: the quick reader cannot read {annotation}")
            annotation = args[0]
        rules: dict[str, Any] = {}
        if get_origin(annotation) is Literal:
            kind = "choice"
            rules["choices"] = list(get_args(annotation))
        elif annotation in kinds:
            kind = kinds[annotation]
        else:
            raise TypeError(f"Settings.{name}: the quick reader cannot read {annotation}")
        for rule in info.metadata:
            for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt")):
                if isinstance(rule, cls):
                    rules[key] = getattr(rule, key)
        table[name] = (kind, optional, info.default, rules)
    return table


def table_source() -> str:
    """The text of `config_fields.py` for the model as it is."""
    lines = [
        '"""`config.Settings`\'s fields for the quick reader (`config_quick`): kind, optional,',
        "default, rules. Generated by `python -m mmsearch.config_quick` from the model; do not edit",
        '(tests/test_settings_quick.py fails when it differs from the model)."""',
        "",
        "from typing import Any",
        "",
        "FIELDS: dict[str, tuple[str, bool, Any, dict[str, Any]]] = {",
    ]
    lines += [f"    {name!r}: {row!r}," for name, row in field_table().items()]
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (Path(__file__).parent / "config_fields.py").write_text(table_source())

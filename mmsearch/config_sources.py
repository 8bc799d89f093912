"""Where settings come from (the mmsearch home, `config.toml`, `MMSEARCH_*` variables) and what
both readers of them share: the pydantic model (`config.Settings`) and the quick reader of a
cold search (`config_quick`). Only the standard library loads here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.errors import ConfigError

DEFAULT_MODEL = "offline-default"
ENV_PREFIX = "MMSEARCH_"
_DEVICE = re.compile(r"auto|cpu|cuda(?::\d+)?")


def _checkout_root() -> Path | None:
    """The source checkout this package runs from, if any (an editable install in a git clone)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / ".git").exists():
        return root
    return None


def home_dir() -> Path:
    """Where indexes, the config file and model caches live unless told otherwise.

    `MMSEARCH_HOME` wins; in a checkout it is the checkout's `indexes/` folder (git-ignored);
    otherwise the platform's user data folder.
    """
    env = os.environ.get("MMSEARCH_HOME")
    if env:
        return Path(env).expanduser()
    root = _checkout_root()
    if root is not None:
        return root / "indexes"
    import platformdirs

    return Path(platformdirs.user_data_dir("mmsearch", appauthor=False))


def config_file() -> Path:
    env = os.environ.get("MMSEARCH_CONFIG")
    return Path(env).expanduser() if env else home_dir() / "config.toml"


def env_names(name: str) -> list[str]:
    """The variables that set `name` (`MMSEARCH_<NAME>` in any case, as pydantic-settings
    matches them), empty ones left out as pydantic-settings leaves them."""
    wanted = (ENV_PREFIX + name).upper()
    return [key for key, value in os.environ.items() if key.upper() == wanted and value != ""]


def env_value(name: str) -> str | None:
    """The raw value of `MMSEARCH_<NAME>` (matched case-insensitively, as pydantic-settings does)."""
    names = env_names(name)
    return os.environ[names[0]] if names else None


def read_config_file(path: Path | None = None) -> dict[str, Any]:
    """The parsed config file (`{}` when there is none).

    Raises:
        ConfigError: the file is a folder, unreadable, not UTF-8 or not valid TOML; or
            `MMSEARCH_CONFIG` names a file that does not exist.
    """
    path = path or config_file()
    explicit = bool(os.environ.get("MMSEARCH_CONFIG"))
    try:
        if not path.exists():
            if explicit:
                raise ConfigError(
                    f"MMSEARCH_CONFIG={path} names no file; create it or unset MMSEARCH_CONFIG."
                )
            return {}
        if path.is_dir():
            raise ConfigError(
                f"The config file {path} is a folder, not a file; move it away "
                "or point MMSEARCH_CONFIG at a TOML file."
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"The config file {path} cannot be read ({exc.strerror or exc}); "
            "fix its permissions or move it away."
        ) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"The config file {path} is not UTF-8 text (bad byte at offset {exc.start}); "
            "fix it or move it away."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        where = re.search(r"\s*\((at line \d+, column \d+|at end of document)\)$", reason)
        if where:
            reason = f"{reason[: where.start()]} {where.group(1)}"
        raise ConfigError(
            f"The config file {path} is not valid TOML: {reason}. "
            "Fix that line (TOML is `name = value`, text in quotes) or move the file away."
        ) from None


def check_home() -> None:
    env = os.environ.get("MMSEARCH_HOME")
    if env and Path(env).expanduser().is_file():
        raise ConfigError(f"MMSEARCH_HOME={env} is a file, not a folder; give a folder path.")


# -- checks beyond a value's type (the model's field validators call these) --------------------


def _check_device(value: str) -> str:
    value = value.strip().lower()
    if not _DEVICE.fullmatch(value):
        raise ValueError("unknown device")
    return value


def _check_model(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("the model name is empty")
    return value


FIELD_CHECKS: dict[str, Callable[[str], str]] = {"device": _check_device, "model": _check_model}
"""Fields checked (and normalised) after their type: raise ValueError for a bad value."""


# -- what a read set of values answers -----------------------------------------------------------

# Set by `load_settings(from_cli=True)`: name values given directly as --options, not keywords.
CLI_NAMES: ContextVar[bool] = ContextVar("mmsearch_cli_names", default=False)


def index_source(init_values: dict[str, Any], index: Path | None) -> str | None:
    """Where the index location came from: "init" (an option), "env", "file", or None."""
    if init_values.get("index") is not None:
        return "init"
    if env_value("index") is not None:
        return "env"
    if index is not None:
        return "file"
    return None


def index_label(source: str | None, path: Path) -> str:
    if source == "init":
        return f"--index {shlex.quote(str(path))}" if CLI_NAMES.get() else f"index={str(path)!r}"
    if source == "env":
        return f"MMSEARCH_INDEX={path}"
    if source == "file":
        return f"index = {json.dumps(str(path), ensure_ascii=False)} in {config_file()}"
    return f"The index location {path}"


class SettingsPaths:
    """The answers both settings classes derive from their values (`index`, `cache_dir`,
    `decode_workers`, and `_index_source`, where the index location came from)."""

    if TYPE_CHECKING:  # declared for the type checker only: pydantic must not see fields here
        index: Path | None
        cache_dir: Path | None
        decode_workers: int
        _index_source: str | None

    def index_path(self) -> Path:
        """The index folder.

        Raises:
            ConfigError: the path names an existing file rather than a folder.
        """
        path = (self.index or home_dir() / "default").expanduser()
        if path.is_file():
            raise ConfigError(
                f"{index_label(self._index_source, path)} is a file, not an index folder; "
                "give a folder path."
            )
        return path

    def model_cache(self) -> Path:
        return (self.cache_dir or home_dir() / "models").expanduser()

    def workers(self) -> int:
        return self.decode_workers or (os.cpu_count() or 1)

"""Settings: defaults, then `config.toml` in the mmsearch home, then `MMSEARCH_*` variables.

Every value is checked where it enters. A bad one (an option, an environment variable, a line
of the config file) raises `ConfigError` with one line naming the value, where it came from,
what is allowed and how to fix it; `load_settings` is the entry point the shells use.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar

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


def _env_value(name: str) -> str | None:
    """The raw value of `MMSEARCH_<NAME>` (matched case-insensitively)."""
    wanted = (ENV_PREFIX + name).upper()
    for key, value in os.environ.items():
        if key.upper() == wanted and value != "":
            return value
    return None


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


# Set by `load_settings(from_cli=True)`: name values given directly as --options, not keywords.
_CLI_NAMES: ContextVar[bool] = ContextVar("mmsearch_cli_names", default=False)


class _Field:
    """One setting: its kind (int, bool, str, path, or a fixed set of words), default and range."""

    def __init__(
        self,
        kind: str,
        default: Any,
        *,
        ge: int | None = None,
        le: int | None = None,
        choices: tuple[str, ...] = (),
        optional: bool = False,
    ) -> None:
        self.kind, self.default, self.ge, self.le = kind, default, ge, le
        self.choices, self.optional = choices, optional

    def parse(self, value: Any) -> Any:
        """The value as the setting holds it; ValueError(reason) when it is not one."""
        if value is None and self.optional:
            return None
        if self.choices:
            if isinstance(value, str) and value in self.choices:
                return value
            raise ValueError("Input should be " + " or ".join(repr(c) for c in self.choices))
        if self.kind == "int":
            number = _parse_int(value)
            if self.ge is not None and number < self.ge:
                raise ValueError(f"Input should be greater than or equal to {self.ge}")
            if self.le is not None and number > self.le:
                raise ValueError(f"Input should be less than or equal to {self.le}")
            return number
        if self.kind == "bool":
            return _parse_bool(value)
        if self.kind == "path":
            if isinstance(value, (str, os.PathLike)):
                return Path(value)
            raise ValueError("Input is not a valid path")
        if isinstance(value, str):
            return value
        raise ValueError("Input should be a valid string")


_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):  # a reason for the message, not a programming error
        raise ValueError("Input should be a valid integer")  # noqa: TRY004
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError("Input should be a valid integer, got a number with a fractional part")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("Input should be a valid integer, unable to parse string") from None
    raise ValueError("Input should be a valid integer")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    raise ValueError("Input should be a valid boolean")


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


_CHECKS = {"device": _check_device, "model": _check_model}


class Settings:
    """Every knob a user may set, in `config.toml` or as `MMSEARCH_<NAME>`.

    Constructing one validates every value; a bad one raises `ConfigError` (one line).
    Sources, the first that sets a value wins: keyword arguments, `MMSEARCH_<NAME>` (any case;
    empty ones are ignored), the config file. Unknown names are ignored.

    Plain Python rather than pydantic-settings: importing that and building the model cost
    ~0.3 s of every cold search (ARCHITECTURE.md, "Cold text search").
    """

    # The fields, in the order their errors are reported. Docs: see the attributes below.
    model_fields: ClassVar[dict[str, _Field]] = {
        "index": _Field("path", None, optional=True),
        "model": _Field("str", DEFAULT_MODEL),
        "cache_dir": _Field("path", None, optional=True),
        "device": _Field("str", "auto"),
        "batch_size": _Field("int", 32, ge=1, le=4096),
        "decode_workers": _Field("int", 0, ge=0, le=256),
        "exact_search_below": _Field("int", 50_000, ge=1),
        "max_image_pixels": _Field("int", 200_000_000, ge=1),
        "max_text_bytes": _Field("int", 20_000_000, ge=1),
        "max_text_chunks": _Field("int", 2000, ge=1, le=1_000_000),
        "keyword_fusion": _Field("str", "score", choices=("score", "rrf")),
        "read_text_in_images": _Field("bool", False),
        "vector_store": _Field("str", "faiss", choices=("faiss", "milvus")),
        "milvus_uri": _Field("str", None, optional=True),
        "milvus_token": _Field("str", None, optional=True),
        "milvus_index": _Field(
            "str", "FLAT",
            choices=("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "DISKANN", "AUTOINDEX"),
        ),
        "rerank": _Field("bool", True),
        "rerank_top_n": _Field("int", 50, ge=2, le=1000),
    }

    index: Path | None
    """Index folder; default `<home>/default`."""
    model: str
    """Model preset for new indexes (an existing index keeps the model that built it)."""
    cache_dir: Path | None
    """Where converted model files are cached; default `<home>/models`."""
    device: str
    """`auto` (CUDA when available), `cpu`, or `cuda[:N]`."""
    batch_size: int
    """Files per model batch."""
    decode_workers: int
    """Threads decoding media while the model encodes; 0 means one per core."""
    exact_search_below: int
    """Vector spaces smaller than this use exact search; larger ones an approximate index."""
    max_image_pixels: int
    """Images with more pixels are skipped as decompression bombs."""
    max_text_bytes: int
    """Text documents larger than this are skipped."""
    max_text_chunks: int
    """Chunks embedded per text document; text past them is still found by keyword search."""
    keyword_fusion: str
    """How keyword (full-text) matches join the vector results: "score" lifts a match's cosine
    part of the way to 1 (scores stay readable cosines; measured better, see ARCHITECTURE.md),
    "rrf" fuses the keyword ranking by reciprocal rank like another space."""
    read_text_in_images: bool
    """Read text in images (OCR: signs, screenshots, slides, scans) at index time, so its words
    find the image. Costs a text-detection pass per image (see the README for the rate); off
    by default. Images indexed while it was off are read on the next `index --verify`."""
    vector_store: str
    """Where vector indexes live: FAISS files in the index folder, or Milvus collections."""
    milvus_uri: str | None
    """Milvus to use (`http://host:19530`, or a local `.db` file for Milvus Lite); default:
    Milvus Lite in `milvus.db` inside the index folder."""
    milvus_token: str | None
    """Credentials for a Milvus cluster (`user:password` or an API key)."""
    milvus_index: str
    """Milvus index type of new collections (see docs/milvus.md)."""
    rerank: bool
    """Rerank the best `rerank_top_n` hits of a text query by what image regions show."""
    rerank_top_n: int
    """How many first-stage hits the reranker reorders (each costs ~0.3 ms)."""

    def __init__(self, **values: Any) -> None:
        sources = (values, _env_values(), read_config_file())
        errors: list[tuple[str, str, Any]] = []
        for name, field in self.model_fields.items():
            given = next((source[name] for source in sources if name in source), field.default)
            try:
                value = field.parse(given)
                if name in _CHECKS:
                    value = _CHECKS[name](value)
            except ValueError as exc:
                errors.append((name, str(exc), given))
                continue
            setattr(self, name, value)
        if errors:
            raise ConfigError(_describe(errors, values))
        self._index_source: str | None = None
        if values.get("index") is not None:
            self._index_source = "init"
        elif _env_value("index") is not None:
            self._index_source = "env"
        elif self.index is not None:
            self._index_source = "file"

    def model_dump(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # equal by value, so not hashable

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.model_dump().items()) + ")"

    def index_path(self) -> Path:
        """The index folder.

        Raises:
            ConfigError: the path names an existing file rather than a folder.
        """
        path = (self.index or home_dir() / "default").expanduser()
        if path.is_file():
            raise ConfigError(
                f"{_index_label(self._index_source, path)} is a file, not an index folder; "
                "give a folder path."
            )
        return path

    def model_cache(self) -> Path:
        return (self.cache_dir or home_dir() / "models").expanduser()

    def workers(self) -> int:
        return self.decode_workers or (os.cpu_count() or 1)

    def with_overrides(self, **changes: Any) -> Settings:
        """A validated copy with the non-None `changes` applied (what the shells use for flags).

        Raises:
            ConfigError: a changed value is out of range.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        merged = {**self.model_dump(), **changes}
        new = type(self)(**merged)
        if "index" not in changes:
            new._index_source = self._index_source
        return new


def _env_values() -> dict[str, str]:
    """`MMSEARCH_<NAME>` values by setting name (names matched in any case; empty ones ignored)."""
    found: dict[str, str] = {}
    for key, value in os.environ.items():
        if value != "" and key.upper().startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name in Settings.model_fields:
                found[name] = value
    return found


def load_settings(*, from_cli: bool = False, **overrides: Any) -> Settings:
    """Settings from the config file and environment, with the non-None `overrides` on top.

    Every value, the overrides included, is validated.

    Args:
        from_cli: name bad overrides as command-line options (`--batch-size 0`) rather than
            as keywords (`batch_size=0`) in the error message.
        overrides: setting names and values, e.g. `batch_size=64`; None means "not given".

    Raises:
        ConfigError: one line naming the bad value, its source, the allowed range and the fix.
    """
    _check_home()
    token = _CLI_NAMES.set(from_cli)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        settings.index_path()  # refuse an index path that names a file now, not later
    finally:
        _CLI_NAMES.reset(token)
    return settings


def _check_home() -> None:
    env = os.environ.get("MMSEARCH_HOME")
    if env and Path(env).expanduser().is_file():
        raise ConfigError(f"MMSEARCH_HOME={env} is a file, not a folder; give a folder path.")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _index_label(source: str | None, path: Path) -> str:
    if source == "init":
        return f"--index {shlex.quote(str(path))}" if _CLI_NAMES.get() else f"index={str(path)!r}"
    if source == "env":
        return f"MMSEARCH_INDEX={path}"
    if source == "file":
        return f"index = {json.dumps(str(path), ensure_ascii=False)} in {config_file()}"
    return f"The index location {path}"


def allowed_values(name: str) -> str:
    """What setting `name` accepts, in words (e.g. "a whole number from 1 to 4096")."""
    if name == "device":
        return "auto, cpu, cuda or cuda:N with N a GPU number"
    if name == "model":
        return "a model name (`mmsearch models` lists them)"
    info = Settings.model_fields.get(name)
    if info is None:
        return "a valid value"
    if info.choices:
        return "one of " + ", ".join(info.choices)
    if info.kind == "int":
        low, high = info.ge, info.le
        if low is not None and high is not None:
            return f"a whole number from {low} to {high}"
        if low is not None:
            return f"a whole number of at least {low}"
        return "a whole number"
    if info.kind == "path":
        return "a folder path"
    return "a valid value"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return str(value).lower()
    return (
        repr(value) if not isinstance(value, Path) else json.dumps(str(value), ensure_ascii=False)
    )


def _describe(errors: list[tuple[str, str, Any]], init_values: dict[str, Any]) -> str:
    """One line for the first of `errors`: the value, its source, what is allowed, the fix."""
    name, message, value = errors[0]
    message = message.split(", unable to parse")[0]
    allowed = allowed_values(name)
    env_name = (ENV_PREFIX + name).upper()
    raw_env = _env_value(name)
    extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if name in init_values:
        shown = init_values[name]
        label = (
            f"{_option(name)} {shlex.quote(str(shown))}"
            if _CLI_NAMES.get()
            else f"{name}={shown!r}"
        )
        return f"{label} is not valid for {name}: {message}{extra}. Use {allowed}."
    if raw_env is not None:
        return (
            f"{env_name}={raw_env!r} is not valid for {name}: {message}{extra}. "
            f"Use {allowed} (set it in the environment or in {config_file()})."
        )
    return (
        f"{name} = {_shown(value)} in the config file {config_file()} is not valid: {message}{extra}. "
        f"Use {allowed} (fix it in that file, or override it with {env_name})."
    )

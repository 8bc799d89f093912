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
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

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
    """The raw value of `MMSEARCH_<NAME>` (matched case-insensitively, as pydantic-settings does)."""
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


class Settings(BaseSettings):
    """Every knob a user may set, in `config.toml` or as `MMSEARCH_<NAME>`.

    Constructing one validates every value; a bad one raises `ConfigError` (one line).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    index: Path | None = None
    """Index folder; default `<home>/default`."""
    model: str = DEFAULT_MODEL
    """Model preset for new indexes (an existing index keeps the model that built it)."""
    cache_dir: Path | None = None
    """Where converted model files are cached; default `<home>/models`."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu`, or `cuda[:N]`."""
    batch_size: int = Field(32, ge=1, le=4096)
    """Files per model batch."""
    decode_workers: int = Field(0, ge=0, le=256)
    """Threads decoding media while the model encodes; 0 means one per core."""
    exact_search_below: int = Field(50_000, ge=1)
    """Vector spaces smaller than this use exact search; larger ones an approximate index."""
    max_image_pixels: int = Field(200_000_000, ge=1)
    """Images with more pixels are skipped as decompression bombs."""
    max_text_bytes: int = Field(20_000_000, ge=1)
    """Text documents larger than this are skipped."""
    max_text_chunks: int = Field(2000, ge=1, le=1_000_000)
    """Chunks embedded per text document; text past them is still found by keyword search."""
    keyword_fusion: Literal["score", "rrf"] = "score"
    """How keyword (full-text) matches join the vector results: "score" lifts a match's cosine
    part of the way to 1 (scores stay readable cosines; measured better, see ARCHITECTURE.md),
    "rrf" fuses the keyword ranking by reciprocal rank like another space."""
    score_calibration: bool = True
    """Show scores on the model's calibrated 0-1 scale (the chance a match of that score is a
    right one, fitted per model and space on labelled dev data), so one `min_score` means the
    same for text, image and sound queries. Off: raw cosines, and no default cut-off. Models
    without a fitted map always show cosines."""
    read_text_in_images: bool = False
    """Read text in images (OCR: signs, screenshots, slides, scans) at index time, so its words
    find the image. Costs a text-detection pass per image (see the README for the rate); off
    by default. Images indexed while it was off are read on the next `index --verify`."""
    video_keyframe_seconds: float = Field(10.0, ge=0.5, le=3600.0)
    """Within one long shot of a video, a keyframe at least every this many seconds (each
    shot gets its own keyframe anyway); lower finds more moments, costs an image encode each."""
    video_scene_change: float = Field(0.10, gt=0.0, le=1.0)
    """Mean colour change (0-1) between two looks a quarter second apart that counts as a
    cut to a new shot."""
    vector_store: Literal["faiss", "milvus"] = "faiss"
    """Where vector indexes live: FAISS files in the index folder, or Milvus collections."""
    milvus_uri: str | None = None
    """Milvus to use (`http://host:19530`, or a local `.db` file for Milvus Lite); default:
    Milvus Lite in `milvus.db` inside the index folder."""
    milvus_token: str | None = None
    """Credentials for a Milvus cluster (`user:password` or an API key)."""
    milvus_index: Literal[
        "FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "DISKANN", "AUTOINDEX"
    ] = "FLAT"
    """Milvus index type of new collections (see docs/milvus.md)."""
    ray_address: str | None = None
    """Index on a Ray cluster: its address (`HOST:6379`, `ray://HOST:10001`), or `local` (the
    cluster running on this machine, else a new one on 127.0.0.1). Unset: this machine only."""
    ray_workers: int = Field(0, ge=0, le=100_000)
    """Ray: encoding actors (each loads the model once); 0 fits them to the cluster."""
    ray_worker_cpus: float = Field(1.0, gt=0, le=1024)
    """Ray: CPUs reserved per encoding actor."""
    ray_worker_gpus: float = Field(0.0, ge=0, le=64)
    """Ray: GPUs per encoding actor (0: CPU actors; 0.5 puts two actors on one GPU)."""
    ray_batch_size: int = Field(0, ge=0, le=4096)
    """Ray: files per model batch on a worker (a GPU wants more than a CPU); 0: `batch_size`."""
    rerank: bool = True
    """Rerank the best `rerank_top_n` hits of a text query by what image regions show."""
    rerank_top_n: int = Field(50, ge=2, le=1000)
    """How many first-stage hits the reranker reorders (each costs ~0.3 ms)."""
    watch_debounce_ms: int = Field(1600, ge=10, le=60_000)
    """Live folders (`mmsearch watch`): the longest a burst of file events is gathered before
    it is handled (a quiet `watch_step_ms` ends a burst sooner)."""
    watch_step_ms: int = Field(50, ge=10, le=10_000)
    """Live folders: this long without a new event ends a burst of events."""
    watch_settle_seconds: float = Field(1.0, ge=0, le=3600)
    """Live folders: a changed file is indexed once it has not been written for this long (a
    copy still growing, a camera still saving), so a half-written file is not encoded."""
    watch_max_wait_seconds: float = Field(30.0, ge=0, le=86_400)
    """Live folders: index changes after this long even if some file is still being written
    (it is indexed again when it is finished)."""
    watch_rescan_minutes: float = Field(60.0, ge=0)
    """Live folders: rescan every folder this often (0: never), for file systems that send no
    or unreliable events (network shares) and events lost in the OS queue. A rescan only looks
    at sizes and times; unchanged files are not read."""
    watch_polling: bool = False
    """Live folders: poll the folders instead of using file-system events (network shares,
    or where the OS watch limit is too low)."""
    watch_poll_ms: int = Field(2000, ge=50, le=3_600_000)
    """Live folders: time between two polls when polling."""

    _index_source: str | None = PrivateAttr(default=None)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, values)) from None
        if values.get("index") is not None:
            self._index_source = "init"
        elif _env_value("index") is not None:
            self._index_source = "env"
        elif self.index is not None:
            self._index_source = "file"

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DEVICE.fullmatch(value):
            raise ValueError("unknown device")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the model name is empty")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = InitSettingsSource(settings_cls, init_kwargs=read_config_file())
        return (init_settings, env_settings, toml)

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
    if get_origin(info.annotation) is Literal:
        return "one of " + ", ".join(get_args(info.annotation))
    if info.annotation is int:
        low = high = None
        for rule in info.metadata:
            if isinstance(rule, Ge):
                low = rule.ge
            elif isinstance(rule, Gt):
                low = rule.gt + 1
            elif isinstance(rule, Le):
                high = rule.le
            elif isinstance(rule, Lt):
                high = rule.lt - 1
        if low is not None and high is not None:
            return f"a whole number from {low} to {high}"
        if low is not None:
            return f"a whole number of at least {low}"
        return "a whole number"
    if "Path" in str(info.annotation):
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


def _describe(exc: ValidationError, init_values: dict[str, Any]) -> str:
    """One line for the first error of `exc`: the value, its source, what is allowed, the fix."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error.get("loc") else "a setting"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ").split(", unable to parse")[0]
    value = error.get("input")
    allowed = allowed_values(name)
    env_name = (ENV_PREFIX + name).upper()
    raw_env = _env_value(name)
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
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

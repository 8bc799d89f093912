"""Settings: defaults, then `config.toml` in the mmsearch home, then `MMSEARCH_*` variables.

Every value is checked where it enters. A bad one (an option, an environment variable, a line
of the config file) raises `ConfigError` with one line naming the value, where it came from,
what is allowed and how to fix it; `load_settings` is the entry point the shells use.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mmsearch.config_sources import (
    CLI_NAMES,
    DEFAULT_MODEL,
    ENV_PREFIX,
    FIELD_CHECKS,
    SettingsPaths,
    check_home,
    config_file,
    home_dir,
    index_source,
    read_config_file,
)
from mmsearch.config_sources import env_value as _env_value
from mmsearch.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL", "ENV_PREFIX", "Settings", "allowed_values", "config_file", "home_dir",
    "load_settings", "read_config_file",
]


class Settings(SettingsPaths, BaseSettings):
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
    video_commit_seconds: float = Field(120.0, ge=5.0, le=86_400.0)
    """A longer video is committed to the index a part of this many seconds at a time, so a
    run interrupted part-way (kill -9, power loss) goes on from the last part it committed."""
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
        self._index_source = index_source(values, self.index)

    @field_validator(*FIELD_CHECKS)
    @classmethod
    def _check(cls, value: str, info: ValidationInfo) -> str:
        return FIELD_CHECKS[info.field_name](value)  # shared with the quick reader

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
    check_home()
    token = CLI_NAMES.set(from_cli)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        settings.index_path()  # refuse an index path that names a file now, not later
    finally:
        CLI_NAMES.reset(token)
    return settings


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


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
            if CLI_NAMES.get()
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

"""Settings: defaults, then `config.toml` in the mmsearch home, then `MMSEARCH_*` variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "offline-default"


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


class Settings(BaseSettings):
    """Every knob a user may set, in `config.toml` or as `MMSEARCH_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="MMSEARCH_", extra="ignore")

    index: Path | None = None
    """Index folder; default `<home>/default`."""
    model: str = DEFAULT_MODEL
    """Model preset for new indexes (an existing index keeps the model that built it)."""
    cache_dir: Path | None = None
    """Where converted model files are cached; default `<home>/models`."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu`, or `cuda[:N]`."""
    batch_size: int = 32
    decode_workers: int = 0
    """Threads decoding media while the model encodes; 0 means one per core."""
    exact_search_below: int = 50_000
    """Vector spaces smaller than this use exact search; larger ones an approximate index."""
    max_image_pixels: int = 200_000_000
    """Images with more pixels are skipped as decompression bombs."""
    max_text_bytes: int = 20_000_000
    """Text documents larger than this are skipped."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml)

    def index_path(self) -> Path:
        return (self.index or home_dir() / "default").expanduser()

    def model_cache(self) -> Path:
        return (self.cache_dir or home_dir() / "models").expanduser()

    def workers(self) -> int:
        return self.decode_workers or (os.cpu_count() or 1)

    def with_overrides(self, **changes: Any) -> "Settings":
        """A copy with the non-None `changes` applied (what the shells use for their flags)."""
        return self.model_copy(update={k: v for k, v in changes.items() if v is not None})

"""One typed Settings object: packaged defaults, then the user's file, then ONWARD_* variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from tasks.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("onward.toml")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""


@dataclass(frozen=True)
class SyncSettings:
    batch_size: int = 100
    max_text_bytes: int = 65536
    idle_renew_seconds: int = 540
    poll_interval_seconds: int = 60
    reconnect_initial_seconds: float = 1.0
    reconnect_max_seconds: float = 300.0
    connect_timeout_seconds: float = 15.0
    read_timeout_seconds: float = 60.0


@dataclass(frozen=True)
class UserSettings:
    name: str = ""
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkerSettings:
    process_limit: int = 4
    fallback_interval_minutes: int = 5
    prefect_port: int = 4200


@dataclass(frozen=True)
class ReactionSettings:
    cooldown_days: int = 3


@dataclass(frozen=True)
class ClassifierSettings:
    rules_file: str = ""


@dataclass(frozen=True)
class Settings:
    """Everything onward reads from configuration, loaded once at the entry point."""

    home: Path
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    user: UserSettings = field(default_factory=UserSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    reactions: ReactionSettings = field(default_factory=ReactionSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    config_file: Path | None = None

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'onward.db'}"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def classifier_rules_file(self) -> Path | None:
        """The user's classifier rules: the configured file, else $ONWARD_HOME/classifier.toml."""
        if self.classifier.rules_file:
            return Path(self.classifier.rules_file).expanduser()
        default = self.home / "classifier.toml"
        return default if default.is_file() else None

    @property
    def templates_dir(self) -> Path:
        return self.home / "templates"

    @property
    def calendar_file(self) -> Path:
        return self.home / "calendar" / "onward.ics"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"


_S = TypeVar("_S")
_SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseSettings,
    "sync": SyncSettings,
    "user": UserSettings,
    "classifier": ClassifierSettings,
    "reactions": ReactionSettings,
    "worker": WorkerSettings,
}


def default_home(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("ONWARD_HOME") or Path.home() / ".onward").expanduser()


def load_settings(
    config_file: Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Build Settings from the packaged defaults, a user file and the environment.

    The user file is ``config_file`` when given (it must exist), else
    ``$ONWARD_HOME/onward.toml`` when present.
    """
    env = dict(os.environ if environ is None else environ)
    home = default_home(env)
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist; check --config")
    user_file = config_file or (home / "onward.toml")
    settings = Settings(home=home)
    for path in (DEFAULTS_FILE, user_file):
        if path.is_file():
            settings = _apply(settings, _read_toml(path), str(path))
    settings = _apply(settings, _env_overrides(env), "environment")
    if not 1 <= settings.reactions.cooldown_days <= 7:
        raise ConfigError("[reactions] cooldown_days must be between 1 and 7")
    return replace(settings, config_file=user_file if user_file.is_file() else None)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from exc


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            raw = env.get(f"ONWARD_{section}_{f.name}".upper())
            if raw is not None:
                out.setdefault(section, {})[f.name] = raw
    url = env.get("ONWARD_DATABASE_URL")
    if url is not None:
        out.setdefault("database", {})["url"] = url
    return out


def _apply(settings: Settings, data: dict[str, Any], origin: str) -> Settings:
    changes: dict[str, Any] = {}
    for section, values in data.items():
        cls = _SECTIONS.get(section)
        if cls is None or not isinstance(values, dict):
            raise ConfigError(f"{origin}: unknown section [{section}]; see onward.toml")
        changes[section] = _coerce_section(
            getattr(settings, section), values, f"{origin} [{section}]"
        )
    return replace(settings, **changes)


def _coerce_section(current: _S, values: dict[str, Any], origin: str) -> _S:
    known = {f.name: f for f in fields(current)}  # type: ignore[arg-type]
    updates: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{origin}: unknown setting {key!r}; see onward.toml")
        updates[key] = _coerce(value, getattr(current, key), f"{origin} {key}")
    return replace(current, **updates)  # type: ignore[type-var]


def _coerce(value: Any, default: Any, origin: str) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {value!r} is not a valid {type(default).__name__}") from exc

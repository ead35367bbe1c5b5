"""One typed Settings object: packaged defaults, then the user's file, then ONWARD_* variables.

Each section is a frozen pydantic model, so types, ranges, time zones and times of day are
checked in one place; every problem becomes one ``ConfigError`` line that names where the
bad value came from and what would work.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from onward.config.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("onward.toml")

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


def _comma_list(value: Any) -> Any:
    """Environment variables hold lists as ``a, b``; files hold TOML arrays."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


StrList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]
Day = Annotated[Weekday, BeforeValidator(_lower)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseSettings(Section):
    url: str = ""


class SyncSettings(Section):
    batch_size: int = Field(100, ge=1, le=10_000)
    max_text_bytes: int = Field(65536, ge=1024)
    idle_renew_seconds: int = Field(540, ge=10, le=1740)
    poll_interval_seconds: int = Field(60, ge=1)
    reconnect_initial_seconds: float = Field(1.0, gt=0)
    reconnect_max_seconds: float = Field(300.0, gt=0)
    connect_timeout_seconds: float = Field(15.0, gt=0)
    read_timeout_seconds: float = Field(60.0, gt=0)


def system_timezone() -> str:
    """The machine's IANA zone name (``TZ``, then /etc/localtime), else UTC."""
    try:
        from tzlocal import get_localzone_name

        return get_localzone_name() or "UTC"
    except Exception:  # an odd /etc/localtime must not stop onward from starting
        return "UTC"


class UserSettings(Section):
    name: str = ""
    addresses: StrList = ()
    # Empty means the system's time zone.
    timezone: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(
                    f"{value!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)"
                ) from exc
        return value


class WorkerSettings(Section):
    process_limit: int = Field(4, ge=1, le=64)
    fallback_interval_minutes: int = Field(5, ge=1)
    prefect_port: int = Field(4200, ge=1, le=65535)
    # The health endpoint of `onward run` on 127.0.0.1; 0 for none.
    health_port: int = Field(4280, ge=0, le=65535)
    # Retention of the local Prefect server onward starts: older flow runs (with their
    # logs and artifacts) and events are deleted.
    keep_runs_days: int = Field(30, ge=1, le=3650)
    # Above this resident memory (MB) `onward run` restarts itself between passes, giving
    # back what months of passes fragmented; 0 for never.
    restart_above_mb: int = Field(512, ge=0)


class ReactionSettings(Section):
    cooldown_days: int = Field(3, ge=1, le=7)


class ClassifierSettings(Section):
    rules_file: str = ""
    # Rejections with a confidence in [review_low, review_high) wait for the person in
    # `onward review`; at or above review_high onward reacts at once.
    review_low: float = Field(0.5, ge=0, le=1)
    review_high: float = Field(0.8, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered_band(self) -> ClassifierSettings:
        if self.review_low > self.review_high:
            raise ValueError("review_low must not be above review_high")
        return self


class CalendarSettings(Section):
    # How long before a timed item its reminder (VALARM) goes off; 0 for none.
    reminder_minutes: int = Field(60, ge=0, le=7 * 24 * 60)
    # The read-only feed `onward run` serves on 127.0.0.1.
    feed_port: int = Field(8765, ge=0, le=65535)
    # The weekly self-evaluation and when the monthly review falls.
    evaluation_day: Day = "sunday"
    evaluation_time: time = time(18, 0)
    evaluation_minutes: int = Field(30, ge=5, le=240)
    monthly_review_day: int = Field(1, ge=1, le=28)


class NetworkSettings(Section):
    # The weekly networking round: how many tasks, and how contacts warm up and cool down.
    tasks_per_week: int = Field(3, ge=0, le=20)
    min_days_between_touches: int = Field(14, ge=1, le=180)
    touches_to_warming: int = Field(2, ge=1, le=50)
    touches_to_warm: int = Field(4, ge=2, le=100)
    cool_after_weeks: int = Field(8, ge=1, le=104)
    round_day: Day = "monday"
    round_time: time = time(9, 0)
    target_companies: StrList = ()
    target_roles: StrList = ()

    @field_validator("touches_to_warm")
    @classmethod
    def _warm_after_warming(cls, value: int, info: ValidationInfo) -> int:
        warming = info.data.get("touches_to_warming")
        if isinstance(warming, int) and value <= warming:
            raise ValueError(f"must be more than touches_to_warming ({warming})")
        return value


_SECTIONS: dict[str, type[Section]] = {
    "database": DatabaseSettings,
    "sync": SyncSettings,
    "user": UserSettings,
    "classifier": ClassifierSettings,
    "reactions": ReactionSettings,
    "worker": WorkerSettings,
    "calendar": CalendarSettings,
    "network": NetworkSettings,
}


class Settings(BaseModel):
    """Everything onward reads from configuration, loaded once at the entry point."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    database: DatabaseSettings = DatabaseSettings()
    sync: SyncSettings = SyncSettings()
    user: UserSettings = UserSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    reactions: ReactionSettings = ReactionSettings()
    worker: WorkerSettings = WorkerSettings()
    calendar: CalendarSettings = CalendarSettings()
    network: NetworkSettings = NetworkSettings()
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
    def calendar_dir(self) -> Path:
        return self.home / "calendar"

    @property
    def calendar_file(self) -> Path:
        return self.calendar_dir / "onward.ics"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def timezone_name(self) -> str:
        return self.user.timezone or system_timezone()

    @cached_property
    def tz(self) -> ZoneInfo:
        """The person's time zone: timed calendar items and weekly schedules use it."""
        try:
            return ZoneInfo(self.timezone_name)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")


def default_home(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("ONWARD_HOME") or Path.home() / ".onward").expanduser()


def load_settings(
    config_file: Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Build Settings from the packaged defaults, a user file and the environment.

    The user file is ``config_file`` when given (it must exist), else
    ``$ONWARD_HOME/onward.toml`` when present. Each layer is checked as it is applied, so
    an error names the file (or the environment) that holds the bad value.
    """
    env = dict(os.environ if environ is None else environ)
    home = default_home(env)
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist; check --config")
    user_file = config_file or (home / "onward.toml")
    data: dict[str, dict[str, Any]] = {}
    layers = [(_read_toml(p), str(p)) for p in (DEFAULTS_FILE, user_file) if p.is_file()]
    layers.append((_env_overrides(env), "environment"))
    for layer, origin in layers:
        for section, values in layer.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise ConfigError(f"{origin}: unknown section [{section}]; see onward.toml")
            merged = {**data.get(section, {}), **values}
            _validate_section(section, merged, values, origin)
            data[section] = merged
    return Settings.model_validate(
        {"home": home, "config_file": user_file if user_file.is_file() else None, **data}
    )


def _validate_section(
    section: str, merged: dict[str, Any], given: dict[str, Any], origin: str
) -> None:
    try:
        _SECTIONS[section].model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            raise ConfigError(
                f"{origin} [{section}]: unknown setting {key!r}; see onward.toml"
            ) from None
        value = given.get(key, merged.get(key))
        why = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{origin} [{section}] {key} = {value!r}: {why}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from exc


def _env_overrides(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, cls in _SECTIONS.items():
        for name in cls.model_fields:
            raw = env.get(f"ONWARD_{section}_{name}".upper())
            if raw is not None:
                out.setdefault(section, {})[name] = raw
    return out

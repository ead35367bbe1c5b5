"""The person's profile: where they are, where they want to go, what time they have."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from onward.config.settings import Day, Settings
from onward.tasks.errors import ConfigError

PROFILE_FILE = "profile.toml"
Level = Literal["beginner", "intermediate", "advanced"]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class Profile(BaseModel):
    """What `onward plan init` asks. Every field has a default: a half-filled profile is
    still a profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    current_position: str = ""
    target_roles: tuple[str, ...] = ()
    skills: dict[str, Annotated[Level, BeforeValidator(_lower)]] = Field(default_factory=dict)
    learning: tuple[str, ...] = ()
    hours_per_week: float = Field(4.0, gt=0, le=60)
    preferred_days: tuple[Day, ...] = ("tuesday", "thursday", "saturday")

    @property
    def role(self) -> str:
        return self.target_roles[0] if self.target_roles else "the roles you are applying for"

    def to_toml(self) -> str:
        """The profile as the TOML `onward plan init` writes (readable, commented)."""

        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        def array(values: tuple[str, ...]) -> str:
            return "[" + ", ".join(quoted(v) for v in values) + "]"

        lines = [
            "# Your profile for onward's development plan (`onward plan init` rewrites it).",
            f"current_position = {quoted(self.current_position)}",
            f"target_roles = {array(self.target_roles)}",
            f"hours_per_week = {self.hours_per_week:g}",
            f"preferred_days = {array(tuple(self.preferred_days))}",
            f"learning = {array(self.learning)}",
            "",
            "[skills]",
            *(f"{quoted(name)} = {quoted(level)}" for name, level in self.skills.items()),
        ]
        return "\n".join(lines) + "\n"


def profile_path(settings: Settings) -> Path:
    return settings.home / PROFILE_FILE


def load_profile(settings: Settings) -> Profile | None:
    """The person's profile, or None when they have none yet."""
    path = profile_path(settings)
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Profile.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML ({exc}); fix it or run onward plan init"
        ) from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "?"
        raise ConfigError(
            f"{path}: {where}: {error['msg']}; fix it or run onward plan init"
        ) from None


def save_profile(settings: Settings, profile: Profile) -> Path:
    path = profile_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(profile.to_toml(), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path

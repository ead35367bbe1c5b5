"""The goal catalogue (``config/goals.toml``, extended by ``$ONWARD_HOME/goals.toml``):
goal kinds with Jinja2 titles and descriptions, estimates, and the emphasis per stage."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from onward.tasks.errors import ConfigError

CATALOGUE_FILE = "goals.toml"


@dataclass(frozen=True)
class GoalKind:
    name: str
    title: str
    description: str
    hours: float
    max_hours: float


@dataclass(frozen=True)
class Catalogue:
    kinds: dict[str, GoalKind]
    emphasis: dict[str, tuple[str, ...]]
    emphasis_why: dict[str, str]

    def kind(self, name: str) -> GoalKind:
        try:
            return self.kinds[name]
        except KeyError:
            raise ConfigError(
                f"goal kind {name!r} is not in the catalogue; add it to goals.toml"
            ) from None

    def render(self, template: str, origin: str, **values: Any) -> str:
        try:
            return " ".join(_environment().from_string(template).render(**values).split())
        except TemplateError as exc:
            raise ConfigError(f"goal catalogue {origin}: {exc}") from exc


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def load_catalogue(user_file: Path | None = None) -> Catalogue:
    """The packaged catalogue, with the person's file merged over it kind by kind."""
    packaged = resources.files("onward.config").joinpath(CATALOGUE_FILE).read_text("utf-8")
    data = tomllib.loads(packaged)
    if user_file is not None and user_file.is_file():
        try:
            mine = tomllib.loads(user_file.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{user_file} is not valid TOML ({exc})") from exc
        for section in ("kinds", "emphasis", "emphasis_why"):
            for key, value in (mine.get(section) or {}).items():
                if section == "kinds":
                    data["kinds"][key] = {**data["kinds"].get(key, {}), **value}
                else:
                    data[section][key] = value
    kinds = {}
    for name, spec in data["kinds"].items():
        try:
            kinds[name] = GoalKind(
                name=name,
                title=str(spec["title"]),
                description=str(spec["description"]),
                hours=float(spec["hours"]),
                max_hours=float(spec.get("max_hours", spec["hours"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"goal kind {name!r} needs title, description and hours") from exc
    emphasis = {stage: tuple(names) for stage, names in data.get("emphasis", {}).items()}
    for names in emphasis.values():
        for name in names:
            if name not in kinds:
                raise ConfigError(f"[emphasis] names {name!r}, which is not a goal kind")
    return Catalogue(kinds, emphasis, dict(data.get("emphasis_why", {})))

"""The kinds of networking task, what each asks of the person, and its suggested message.

Messages come from Jinja2 templates in ``config/templates/network/`` (sandboxed, strict
undefined); a file of the same name in ``$ONWARD_HOME/templates/network/`` overrides one.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from onward.tasks.errors import ConfigError
from onward.tasks.feedback.replies import PACKAGED_TEMPLATES, clean_text, first_name


@dataclass(frozen=True)
class KindInfo:
    title: str  # "{name}" is the contact's name
    how: str


KINDS: dict[str, KindInfo] = {
    "follow": KindInfo(
        "Follow {name}",
        "Follow them (or connect, with the short note below) so their updates reach you.",
    ),
    "comment": KindInfo(
        "Comment on a recent post by {name}",
        "Pick something they posted or shared lately and add a thoughtful comment: "
        "what you took from it, an example of your own, or a question.",
    ),
    "react": KindInfo(
        "React to a recent post by {name}",
        "Like or react to something they posted; add a line if you have one.",
    ),
    "congratulate": KindInfo(
        "Congratulate {name} on their news",
        "Look for news (a new role, a launch, a talk, a work anniversary) and congratulate "
        "them. No news? React to a recent post instead.",
    ),
    "share": KindInfo(
        "Share something useful with {name}",
        "Send an article, talk or tool they would find useful, with a thought of your own.",
    ),
    "check_in": KindInfo(
        "Check in with {name}",
        "A short, friendly note: how are things, and one line on what you are up to.",
    ),
    "advice": KindInfo(
        "Ask {name} for advice",
        "Ask one specific question they are well placed to answer; not for a job.",
    ),
    "call": KindInfo(
        "Ask {name} for a short call",
        "Ask for 20 minutes to learn how they work and what they would do in your place.",
    ),
    "ask_roles": KindInfo(
        "Ask {name} about open roles",
        "They know you by now: ask whether their team is hiring or who you should talk to.",
    ),
    "referral": KindInfo(
        "Ask {name} for a referral",
        "They know you by now: ask whether they would refer you for a role at their company.",
    ),
}
ASK_KINDS = frozenset({"ask_roles", "referral"})
TEMPLATE_DIR = "network"


def task_summary(kind: str, name: str) -> str:
    return KINDS[kind].title.format(name=clean_text(name, 120))


@dataclass(frozen=True)
class MessageContext:
    contact_name: str
    company: str | None
    position: str | None
    stage: str
    target_role: str | None
    sender_name: str | None


def message_variables(context: MessageContext) -> dict[str, Any]:
    """The cleaned values a networking template sees (documented in _variables.txt.j2)."""
    company = clean_text(context.company, 100) or None
    name = clean_text(context.contact_name, 80)
    return {
        "first_name": first_name(name, company) if "@" not in name else None,
        "contact_name": name,
        "company": company,
        "position": clean_text(context.position, 120) or None,
        "stage": context.stage,
        "target_role": clean_text(context.target_role, 120) or None,
        "sender_name": clean_text(context.sender_name, 80) or None,
    }


@lru_cache(maxsize=8)
def _environment(search_path: tuple[str, ...]) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(list(search_path)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_message(
    kind: str, context: MessageContext, *, template_dirs: Sequence[Path] = ()
) -> str:
    """The suggested message for a task of ``kind``; a template in ``template_dirs`` (under
    ``network/``) overrides the packaged one. ConfigError names the file and line."""
    if kind not in KINDS:
        raise ValueError(f"unknown networking task kind {kind!r}")
    name = f"{TEMPLATE_DIR}/{kind}.txt.j2"
    search_path = (*(str(d) for d in template_dirs), str(PACKAGED_TEMPLATES))
    env = _environment(search_path)
    try:
        template = env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"template {exc.filename or name}, line {exc.lineno}: {exc.message}"
        ) from exc
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {name} not found in {', '.join(search_path)}") from exc
    variables = message_variables(context)
    try:
        text = template.render(variables)
    except jinja2.TemplateError as exc:
        filename = template.filename or name
        lines = [
            f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename
        ]
        where = f"{filename}, line {lines[-1]}" if lines else filename
        problem = (exc.message or type(exc).__name__).rstrip(".")
        if isinstance(exc, jinja2.UndefinedError):
            problem += f" (a template may use: {', '.join(variables)})"
        raise ConfigError(f"template {where}: {problem}") from exc
    body = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", body).strip("\n") + "\n"

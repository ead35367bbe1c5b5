"""Secrets (mailbox and calendar passwords, tokens), kept outside the app database.

The database only holds a reference: ``file:<name>`` (a mode-0600 file under
``$ONWARD_HOME/secrets``) or ``prefect-block:<name>`` (a Prefect Secret block, encrypted
by the Prefect server). The secret itself never enters flow parameters or logs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

from onward.tasks.errors import ConfigError

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _slug(name: str) -> str:
    return _SAFE.sub("-", name).strip("-.") or "mailbox"


def store_secret(secrets_dir: Path, name: str, secret: str, backend: str = "file") -> str:
    """Save ``secret`` for ``name`` (a mailbox or a calendar account); returns the reference
    to keep in the database."""
    if backend == "prefect":
        from prefect.blocks.system import Secret
        from pydantic import SecretStr

        # Block names take lower-case letters, digits and dashes only.
        block = "onward-" + (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "mailbox")
        Secret(value=SecretStr(secret)).save(block, overwrite=True)
        return f"prefect-block:{block}"
    if backend != "file":
        raise ConfigError("the secret store must be 'file' or 'prefect'")
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(secrets_dir, 0o700)
    path = secrets_dir / f"{_slug(name)}.secret"
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start: there is no moment where the file is readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret)
    os.replace(tmp, path)
    return f"file:{path.name}"


def load_secret(secrets_dir: Path, ref: str) -> str:
    kind, _, name = ref.partition(":")
    if kind == "file":
        path = secrets_dir / name
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise ConfigError(
                    f"{path} is readable by other users (mode {mode:o}); run chmod 600 {path}"
                )
            return path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(
                f"the mailbox secret {path} is missing; run `onward connect` again"
            ) from exc
    if kind == "prefect-block":
        from prefect.blocks.system import Secret

        try:
            loaded = cast("Secret[Any]", Secret.load(name))
            return str(loaded.get())
        except ValueError as exc:
            raise ConfigError(
                f"Prefect Secret block {name!r} not found; run `onward connect` again"
            ) from exc
    raise ConfigError(f"unknown secret reference {ref!r}; run `onward connect` again")

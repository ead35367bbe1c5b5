"""The ``onward`` command line. Imports stay inside commands so ``onward --help`` is quick."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from onward.config.settings import Settings, load_settings
from onward.tasks.errors import (
    CalDavAuthError,
    ConfigError,
    MailboxAuthError,
    MailboxConnectError,
    MailboxFolderError,
    MailboxTLSError,
    OnwardError,
)
from onward.tasks.private import secure_home

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Errors the person fixes by changing what they typed or configured: one line, exit 2.
USAGE_ERRORS = (
    CalDavAuthError,
    ConfigError,
    MailboxAuthError,
    MailboxConnectError,
    MailboxFolderError,
    MailboxTLSError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onward",
        description="Watches your inbox for job rejections and turns each into next steps.",
    )
    parser.add_argument(
        "--config", type=Path, help="settings file (default $ONWARD_HOME/onward.toml)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from onward.deployments import (
        calendar_commands,
        classify_commands,
        commands,
        network_commands,
        plan_commands,
        review_commands,
    )

    commands.register(sub)
    classify_commands.register(sub)
    calendar_commands.register(sub)
    network_commands.register(sub)
    review_commands.register(sub)
    plan_commands.register(sub)
    return parser


def prepare_environment(settings: Settings) -> None:
    """Prefect settings onward relies on, unless the person chose their own."""
    if "PREFECT_HOME" not in os.environ:
        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(settings.prefect_home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # A cold ephemeral server runs its migrations first; on a busy laptop that exceeds 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "onward")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT", "false")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        args.settings = settings
        # No telemetry from any Prefect server onward starts, the demo's included.
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        if args.command != "demo":  # the demo keeps everything inside its own folder
            secure_home(settings.home)
            prepare_environment(settings)
        code: int = args.func(args)
        return code
    except USAGE_ERRORS as exc:
        print(f"onward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OnwardError as exc:
        print(f"onward: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("onward: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`onward drafts --json | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""onward's errors: one base class, and the few kinds a caller acts on differently."""

from onward.config.errors import ConfigError, OnwardError

__all__ = [
    "CalDavAuthError",
    "CalDavError",
    "CalDavUnavailableError",
    "ConfigError",
    "MailboxAuthError",
    "MailboxConnectError",
    "MailboxError",
    "MailboxFolderError",
    "MailboxTLSError",
    "MailboxUnreachableError",
    "MalformedMessageError",
    "OnwardError",
    "TransientError",
    "TransientMailboxError",
    "unreachable",
]


class MailboxError(OnwardError):
    """A mailbox could not be used."""


class MailboxAuthError(MailboxError):
    """The server refused the credentials."""


class MailboxConnectError(MailboxError):
    """The server could not be reached (DNS, refused, timeout). ``unreachable`` names the
    server and the reason when it was refused or timed out (not a wrong host name)."""

    def __init__(self, message: str, *, unreachable: str | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class MailboxFolderError(MailboxError):
    """The folder to watch does not exist (or is not a Maildir): fix --folder or the path."""


class MailboxTLSError(MailboxError):
    """The TLS handshake failed, most often an untrusted certificate."""


class TransientError(OnwardError):
    """Something a retry later is expected to fix (a dropped connection, a server down)."""


class TransientMailboxError(MailboxError, TransientError):
    """A dropped connection or a server hiccup: retrying later is expected to work."""


class MailboxUnreachableError(TransientMailboxError):
    """A server that worked before does not answer now: onward tries again later."""


def unreachable(exc: MailboxConnectError) -> MailboxError:
    """``exc`` as it reads once the mailbox is connected: a server that is down is not a
    wrong --host or --port."""
    if exc.unreachable is None:
        return exc
    return MailboxUnreachableError(
        f"the mail server {exc.unreachable} is unreachable; onward will retry: run"
        " `onward sync --once` again later, or leave `onward run` running"
    )


class MalformedMessageError(OnwardError):
    """A message could not be parsed at all; it is recorded and skipped."""


class CalDavError(OnwardError):
    """The CalDAV server refused or failed a request; the message says what to do."""


class CalDavAuthError(CalDavError):
    """The CalDAV server refused the user name or password."""


class CalDavUnavailableError(CalDavError, TransientError):
    """The CalDAV server could not be reached or failed; the push is retried later."""

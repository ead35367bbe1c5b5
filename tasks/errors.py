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
    "MailboxTLSError",
    "MalformedMessageError",
    "OnwardError",
    "TransientError",
    "TransientMailboxError",
]


class MailboxError(OnwardError):
    """A mailbox could not be used."""


class MailboxAuthError(MailboxError):
    """The server refused the credentials."""


class MailboxConnectError(MailboxError):
    """The server could not be reached (DNS, refused, timeout)."""


class MailboxTLSError(MailboxError):
    """The TLS handshake failed, most often an untrusted certificate."""


class TransientError(OnwardError):
    """Something a retry later is expected to fix (a dropped connection, a server down)."""


class TransientMailboxError(MailboxError, TransientError):
    """A dropped connection or a server hiccup: retrying later is expected to work."""


class MalformedMessageError(OnwardError):
    """A message could not be parsed at all; it is recorded and skipped."""


class CalDavError(OnwardError):
    """The CalDAV server refused or failed a request; the message says what to do."""


class CalDavAuthError(CalDavError):
    """The CalDAV server refused the user name or password."""


class CalDavUnavailableError(CalDavError, TransientError):
    """The CalDAV server could not be reached or failed; the push is retried later."""

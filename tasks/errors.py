"""onward's errors: one base class, and the few kinds a caller acts on differently."""

from onward.config.errors import ConfigError, OnwardError

__all__ = [
    "ConfigError",
    "MailboxAuthError",
    "MailboxConnectError",
    "MailboxError",
    "MailboxTLSError",
    "MalformedMessageError",
    "OnwardError",
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


class TransientMailboxError(MailboxError):
    """A dropped connection or a server hiccup: retrying later is expected to work."""


class MalformedMessageError(OnwardError):
    """A message could not be parsed at all; it is recorded and skipped."""

"""onward's base error and the configuration error; everything else builds on them."""


class OnwardError(Exception):
    """Base of every error onward raises on purpose."""


class ConfigError(OnwardError):
    """Settings or command-line input that cannot work; the message says what to do."""

"""Errors that carry a one-line, user-facing message saying what went wrong and what to fix."""


class PgMetadataError(Exception):
    """Base class: its message is shown to the user as is, on one line."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # worth retrying: the server restarting, a dropped link


class ConfigError(PgMetadataError):
    """Configuration is invalid; raised before any connection is made."""


class SourceConnectionError(PgMetadataError):
    """The source PostgreSQL server could not be reached or refused us."""


class ExtractionError(PgMetadataError):
    """A catalog query failed on the source server."""


class OutputError(PgMetadataError):
    """The output target could not be written or read."""

"""Errors that name the problem and the fix, so a user never has to read a traceback."""


class BlurbError(Exception):
    """Base class for every error blurblib raises on purpose."""


class UnknownNameError(BlurbError, KeyError):
    """A task, model, technique or profile name that is not in its registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(BlurbError, ValueError):
    """Missing, malformed or empty data; the message says where and how to fix it."""


class ConfigError(BlurbError, ValueError):
    """A run, sweep or technique configuration that cannot work."""


class ModelUnavailableError(BlurbError, OSError):
    """A model that cannot be loaded here (offline hub, missing pack, bad checksum)."""


class StoreWarning(UserWarning):
    """A results store repaired something users did to it (a corrupt record, a stale lock)."""

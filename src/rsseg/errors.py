"""Errors that rsseg reports to its users as one line, before any training starts.

Entry points catch :class:`RssegError`, print ``error: <message>`` and exit with status 2, so that a bad
folder, an unknown colour or a class-count mismatch never shows up as a traceback halfway through a run.
"""


class RssegError(Exception):
    """Base class: the message names the file, key or value at fault and what was expected."""


class ConfigError(RssegError, ValueError):
    """A configuration value is missing, unknown or inconsistent with another one."""


class DataError(RssegError, ValueError):
    """A data file is missing, unreadable or does not match what its dataset config promises."""

"""Errors that rsseg reports to its users as one line, before any training starts.

Entry points catch :class:`RssegError`, print ``error: <message>`` and exit with status 2, so that a bad
folder, an unknown colour or a class-count mismatch never shows up as a traceback halfway through a run.
:func:`rsseg.runtime.console.warn` is the matching one-line ``warning: <message>`` for input that is used but looks
wrong.
"""

from __future__ import annotations


class RssegError(Exception):
    """Base class: the message names the file, key or value at fault and what was expected."""


class ConfigError(RssegError, ValueError):
    """A configuration value is missing, unknown or inconsistent with another one."""


class DataError(RssegError, ValueError):
    """A data file is missing, unreadable or does not match what its dataset config promises."""


class PretrainedWeightsError(RssegError):
    """Pretrained weights could not be obtained or do not fit the model; the message says what to pass."""


class Interrupted(Exception):
    """A run stopped by SIGTERM or Ctrl-C after cleaning up; the message says what was kept.

    Not a ``KeyboardInterrupt``: Lightning turns those into ``sys.exit(1)`` inside ``Trainer.fit``, while this
    one travels up to the entry point, which prints it and exits with status 130.
    """

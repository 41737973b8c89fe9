"""Errors that rsseg reports to its users as one line, before any training starts.

Entry points catch :class:`RssegError`, print ``error: <message>`` and exit with status 2, so that a bad
folder, an unknown colour or a class-count mismatch never shows up as a traceback halfway through a run.
:func:`warn` is the matching one-line ``warning: <message>`` for input that is used but looks wrong.
"""

from __future__ import annotations

import sys


class RssegError(Exception):
    """Base class: the message names the file, key or value at fault and what was expected."""


class ConfigError(RssegError, ValueError):
    """A configuration value is missing, unknown or inconsistent with another one."""


class DataError(RssegError, ValueError):
    """A data file is missing, unreadable or does not match what its dataset config promises."""


class Interrupted(Exception):
    """A run stopped by SIGTERM or Ctrl-C after cleaning up; the message says what was kept.

    Not a ``KeyboardInterrupt``: Lightning turns those into ``sys.exit(1)`` inside ``Trainer.fit``, while this
    one travels up to the entry point, which prints it and exits with status 130.
    """


_warned: set[str] = set()


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr, once per distinct message in this process."""
    from rsseg.console import _start_of_line

    if message not in _warned:
        _warned.add(message)
        _start_of_line(sys.stderr)
        print(f"warning: {message}", file=sys.stderr, flush=True)

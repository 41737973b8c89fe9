"""What rsseg prints besides its results, and the library noise it keeps off the terminal.

* Errors are one line, ``error: <message>`` on stderr, on a line of their own even when a progress bar was
  being drawn on the current line (a terminal gets the line erased first).
* Warnings (:func:`warn`) are one line each, ``warning: <message>``, once per distinct message.
* Notes are one line each and said once per process (``note: <message>``): a run over a folder of JPEGs says
  once that they carry no georeferencing, not once per file or per DataLoader worker.
* :class:`LightningNoise` drops Lightning's advertising tips (litlogger, litmodels) and its notice that a model
  summary callback is already configured (rsseg configures one on purpose). The job logging config
  ``conf/hydra/job_logging/rsseg.yaml`` installs it and turns rasterio's INFO log down: rasterio logs every GDAL
  error it then raises as an exception, and rsseg reports that exception itself, naming the file.
"""

from __future__ import annotations

import logging
import sys

_ERASE_LINE = "\r\x1b[K"  # carriage return, then erase to the end of the line
_noted: set[str] = set()


def _start_of_line(stream) -> None:
    """Leave the cursor at the start of an empty line: a progress bar may hold the current one."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        stream.write(_ERASE_LINE)


def print_error(message: object) -> None:
    """``error: <message>`` on stderr, on a line of its own."""
    sys.stdout.flush()
    _start_of_line(sys.stderr)
    print(f"error: {message}", file=sys.stderr, flush=True)


def note_once(key: str, message: str) -> None:
    """``note: <message>`` on stderr, the first time ``key`` is noted in this process."""
    if key in _noted:
        return
    _noted.add(key)
    _start_of_line(sys.stderr)
    print(f"note: {message}", file=sys.stderr, flush=True)


class LightningNoise(logging.Filter):
    """Drops the messages of Lightning's rank-zero logger that advertise other products or repeat a choice the
    user made (``Trainer already configured with model summary callbacks``)."""

    DROPPED = ("💡 Tip:", "Trainer already configured with model summary callbacks")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self.DROPPED)


_warned: set[str] = set()


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr, once per distinct message in this process."""
    if message not in _warned:
        _warned.add(message)
        _start_of_line(sys.stderr)
        print(f"warning: {message}", file=sys.stderr, flush=True)

"""What rsseg prints besides its results, and the library noise it keeps off the terminal.

* Errors are one line, ``error: <message>`` on stderr, on a line of their own even when a progress bar was
  being drawn on the current line (a terminal gets the line erased first).
* Warnings (:func:`warn`) are one line each, ``warning: <message>``, once per distinct message.
* Notes are one line each and said once per process (``note: <message>``): a run over a folder of JPEGs says
  once that they carry no georeferencing, not once per file or per DataLoader worker.
* Results (:func:`say`) go to stdout and into the run's log file (``<run folder>/train.log``, ``predict.log``,
  ``eval.log``), so the log holds what the terminal showed.
* Progress (:func:`progress`) is a tqdm bar on stderr when stderr is a terminal, and nothing otherwise: a bar
  redrawn in place is unreadable in a log file or a pipe.
* :class:`LightningNoise` drops Lightning's advertising tips (litlogger, litmodels), its report of which
  accelerators exist (``GPU available: ...``) and its notice that a model summary callback is already configured.
  The job logging config ``conf/hydra/job_logging/rsseg.yaml`` installs it and turns rasterio's INFO log down:
  rasterio logs every GDAL error it then raises as an exception, and rsseg reports that exception itself, naming
  the file. :func:`quiet_libraries` turns off Lightning's narration of what it does and the warnings of torch
  and Lightning that speak of their own internals, not of the user's run.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterable

_ERASE_LINE = "\r\x1b[K"  # carriage return, then erase to the end of the line
_noted: set[str] = set()


def _start_of_line(stream) -> None:
    """Leave the cursor at the start of an empty line: a progress bar may hold the current one."""
    if is_terminal(stream):
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
    """Drops the messages of Lightning's rank-zero logger that advertise other products, list the accelerators the
    machine has (``GPU available: False, used: False``: the run's own device is in the config), or repeat a choice
    the user made (``Trainer already configured with model summary callbacks``)."""

    DROPPED = ("💡 Tip:", "Trainer already configured with model summary callbacks", "GPU available:",
               "TPU available:", "HPU available:")

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


def say(message: str) -> None:
    """Print ``message`` on stdout and write it into the run's log file (the file handlers of the root logger,
    which Hydra's job logging points at ``<run folder>/<job>.log``); outside a Hydra run only the print."""
    print(message, flush=True)
    to_log_files(message)


def to_log_files(message: str) -> None:
    """Write ``message`` into the log files of the root logger only, not the console: for what the terminal
    shows another way (a progress bar's last state)."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if handlers:
        record = logging.LogRecord("rsseg", logging.INFO, __file__, 0, message, None, None)
        for handler in handlers:
            handler.handle(record)


def progress(items: Iterable, description: str, unit: str, total: int | None = None):
    """``items``, with a tqdm bar on stderr while they are worked through when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(items, desc=description, unit=unit, total=total, leave=False, file=sys.stderr,
                dynamic_ncols=True, disable=not is_terminal(sys.stderr))


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (not a pipe, a file or a captured stream)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


# Warnings about the libraries' own internals or a choice the config made, not about the user's run: torch
# deprecating a class Lightning still uses, Lightning noting that an epoch has fewer steps than its step-logging
# interval (rsseg logs epoch means), that a GPU is there but unused (scale=smoke and scale=cpu, trainer=cpu), and,
# under DDP, that the training loss is not synchronised (it is rank 0's running loss, a progress signal; every
# reported metric comes from the confusion matrices summed across ranks).
LIBRARY_WARNINGS = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    (UserWarning, r"The number of training batches \(\d+\) is smaller than the logging interval"),
    (UserWarning, r"(GPU|TPU|HPU) available but not used"),
    (UserWarning, r"It is recommended to use `self\.log\('train/loss', \.\.\., sync_dist=True\)`"),
)


# Lightning's narration of what it does (which accelerators exist, "Loading `train_dataloader` to estimate number
# of stepping batches", "`Trainer.fit` stopped: `max_epochs=1` reached", "Restoring states from the checkpoint
# path ...", each rank's "Initializing distributed"): rsseg reports the run itself. Its warnings still show.
LIBRARY_NARRATION = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.distributed")


def quiet_libraries() -> None:
    """Keep the libraries' own reports off the terminal in this process (training and its DDP ranks call this
    first, after importing Lightning): :data:`LIBRARY_WARNINGS` are ignored, the loggers of
    :data:`LIBRARY_NARRATION` show warnings only unless a level was set for them
    (``hydra.verbose=lightning.pytorch.utilities.rank_zero`` shows everything), and Lightning's own console
    handler is removed where the root logger has handlers (Hydra's job logging), which would print each of its
    messages a second time on stderr."""
    for category, message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in LIBRARY_NARRATION:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    if logging.getLogger().handlers:
        # "lightning" always gets a handler of its own; "lightning.pytorch" gets one (and stops propagating) when
        # it is imported before logging was configured.
        for name in ("lightning", "lightning.pytorch"):
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)
            logger.propagate = True

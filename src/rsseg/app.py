"""What every Hydra entry point shares: one-line errors and a non-zero exit for bad input."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rsseg.console import print_error
from rsseg.errors import RssegError


def run_guarded(function: Callable, *args, **kwargs):
    """Run ``function``; an ``RssegError`` becomes ``error: <message>`` on stderr and exit status 2."""
    try:
        return function(*args, **kwargs)
    except RssegError as error:
        print_error(error)
        sys.exit(2)

"""The command line of a Hydra command: recorded as the user typed it, and given to Hydra in an order it reads.

``rsseg train model=unet`` runs Hydra with ``hydra.job.name=train`` added, and Hydra's parser reads its
``key=value`` overrides only as one run of words (``model=unet --cfg job seed=1`` is refused there). So that
``results.json`` records a command a user can run again, :func:`recorded` keeps the words as typed, in
``$RSSEG_COMMAND`` for this process and the processes it starts (DDP ranks, launcher workers); :func:`for_hydra`
puts Hydra's flags (with their values) before the overrides, so flags go anywhere, and refuses in one line the
flags Hydra cannot combine (``-m`` with ``--cfg``) instead of Hydra's traceback.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rsseg.errors import ConfigError

COMMAND_ENV = "RSSEG_COMMAND"

# Hydra's flags that take a value (hydra._internal.utils.get_args_parser), and --info's optional one.
WITH_VALUE = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                        "--config-dir", "-cd", "--experimental-rerun"})
INFO = frozenset({"--info", "-i"})
INFO_CHOICES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})
# The flags that each decide what Hydra does: Hydra takes one of them.
MODES = {"--run": "-r", "-r": "-r", "--multirun": "-m", "-m": "-m", "--cfg": "--cfg", "-c": "--cfg",
         "--info": "--info", "-i": "--info", "--shell-completion": "-sc", "-sc": "-sc"}


@contextmanager
def recorded(words: Sequence[str]) -> Iterator[str]:
    """Record ``words`` (``["rsseg", "train", "model=unet"]``) as this command for the block; a process started by
    another rsseg command (a DDP rank) keeps that one's."""
    previous = os.environ.get(COMMAND_ENV)
    if previous is None:
        os.environ[COMMAND_ENV] = shlex.join(words)
    try:
        yield os.environ[COMMAND_ENV]
    finally:
        if previous is None:
            os.environ.pop(COMMAND_ENV, None)


def typed_command() -> str:
    """The command as the user typed it: ``rsseg train model=unet`` or ``python train.py model=unet``."""
    return os.environ.get(COMMAND_ENV) or shlex.join(["python", *sys.argv])


def split_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Hydra's flags with their values, and the overrides, each in the order given."""
    flags, overrides = [], []
    words = list(argv)
    while words:
        word = words.pop(0)
        if not word.startswith("-"):
            overrides.append(word)
            continue
        flags.append(word)
        if "=" in word:
            continue
        if word in WITH_VALUE and words:
            flags.append(words.pop(0))
        elif word in INFO and words and words[0] in INFO_CHOICES:
            flags.append(words.pop(0))
    return flags, overrides


def for_hydra(argv: Sequence[str]) -> list[str]:
    """``argv`` with Hydra's flags first and the overrides after them; a ConfigError for flags Hydra cannot
    combine."""
    flags, overrides = split_flags(argv)
    modes = list(dict.fromkeys(MODES[flag.split("=", 1)[0]] for flag in flags if flag.split("=", 1)[0] in MODES))
    if len(modes) > 1:
        typed = " and ".join(modes)
        if set(modes) == {"-m", "--cfg"}:
            raise ConfigError("-m with --cfg: --cfg prints the config of one run, and a sweep runs one per job; "
                              "expected --cfg job without -m, with one value per key (model=unet, not "
                              "model=unet,segnet)")
        raise ConfigError(f"{typed}: Hydra does one of these per command; expected only one of "
                          f"-r, -m, --cfg, --info and --shell-completion")
    return [*flags, *overrides]

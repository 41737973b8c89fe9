"""What every rsseg command shares: one error path, one interrupt path and the ``--debug`` switch.

A user error reaches the user as one line ``error: <what>: <why>; <what was expected>`` on stderr and exit
status 2, wherever it was raised: rsseg's own checks (:class:`~rsseg.errors.RssegError`), Hydra while it composes
the config (an unknown key or option, a value of the wrong type, an override it cannot parse), a constructor
called by Hydra's ``instantiate``, the operating system (a folder that cannot be written). Anything else is a bug
in rsseg and keeps its traceback. An interrupt (Ctrl-C, or SIGTERM where the command treats it alike) exits with
status 130 once the command has removed its temporaries. A run that fails or is interrupted before writing
anything leaves no run folder behind. ``--debug`` (or ``HYDRA_FULL_ERROR=1``, or ``RSSEG_DEBUG=1``) shows the
full traceback instead of the line.

Entry points: the root scripts and ``rsseg <command>`` call :func:`run_app` around their ``@hydra.main``
function, whose body calls :func:`run_guarded` (through each module's ``main``).
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rsseg.errors import Interrupted, RssegError
from rsseg.runtime.cmdline import for_hydra, recorded
from rsseg.runtime.console import print_error

DEBUG_ENV = "RSSEG_DEBUG"
_OWN_FULL_ERROR = "RSSEG_SET_HYDRA_FULL_ERROR"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


def run_app(hydra_main: Callable[[], object], typed: Sequence[str] | None = None) -> object:
    """Run a ``@hydra.main`` function: composition errors become one line and exit 2 like the others.

    ``typed``: the command as the user typed it (``rsseg train ...``), when ``sys.argv`` is not (the rsseg command
    rewrites it); results record it (:mod:`rsseg.runtime.cmdline`). Hydra's flags may come anywhere in it."""
    saved = {key: os.environ.get(key) for key in (DEBUG_ENV, "HYDRA_FULL_ERROR", _OWN_FULL_ERROR)}
    typed = list(typed) if typed is not None else ["python", *sys.argv]
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    # The user's own HYDRA_FULL_ERROR=1 asks for tracebacks; the one rsseg sets below (and processes it starts
    # inherit) does not.
    if os.environ.get("HYDRA_FULL_ERROR") == "1" and os.environ.get(_OWN_FULL_ERROR) != "1":
        os.environ[DEBUG_ENV] = "1"
    # Hydra re-raises instead of printing its own report, so the message below is the only one.
    os.environ["HYDRA_FULL_ERROR"] = os.environ[_OWN_FULL_ERROR] = "1"
    try:
        with recorded(typed):
            sys.argv[1:] = for_hydra(sys.argv[1:])
            return hydra_main()
    except (KeyboardInterrupt, Interrupted) as interrupt:
        _report_interrupt(interrupt)
    except Exception as error:
        message = None if debugging() else user_message(error)
        if message is None:
            raise
        print_error(message)
        sys.exit(2)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_guarded(function: Callable | str, *args, **kwargs):
    """Run a command's body on its composed config: the config is checked against its schema first; a user
    error becomes ``error: <message>`` and exit status 2, an interrupt exit status 130, and either removes the
    run folder Hydra created when nothing else was written to it. ``function`` may be named ``"module:name"``,
    imported only once the config passed its checks (a refused command never loads Lightning)."""
    from rsseg.config.checks import check_config
    from rsseg.runtime.extras import check_extras

    try:
        if args and hasattr(args[0], "_get_node"):
            check_config(args[0])
            check_extras(args[0])
        if isinstance(function, str):
            module, _, name = function.partition(":")
            function = getattr(importlib.import_module(module), name)
        return function(*args, **kwargs)
    except (KeyboardInterrupt, Interrupted) as interrupt:
        remove_run_dir_if_empty()
        _report_interrupt(interrupt)
    except SystemExit as stop:
        # Lightning stops a run after SIGTERM with a SystemExit of status 0; it is an interrupt (status 130).
        if _is_sigterm(stop):
            _report_interrupt(stop)
        raise
    except Exception as error:
        message = None if debugging() else user_message(error)
        if message is None:
            raise
        remove_run_dir_if_empty()
        print_error(message)
        sys.exit(2)


def terminate_as_interrupt() -> None:
    """Make SIGTERM (``kill``, a scheduler's time limit) clean up like Ctrl-C: predict, eval and prepare
    remove their temporaries on ``KeyboardInterrupt``. Training keeps Lightning's own SIGTERM handling."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _is_sigterm(error: BaseException) -> bool:
    """Lightning's own stop after SIGTERM (during validation), which rsseg's Preemption callback annotates."""
    return type(error).__name__ == "SIGTERMException" and type(error).__module__.startswith("lightning")


def _report_interrupt(interrupt: BaseException) -> None:
    if isinstance(interrupt, Interrupted):
        detail = str(interrupt)
    else:
        notes = getattr(interrupt, "__notes__", None)
        detail = notes[-1] if notes else "nothing half-written was left behind"
    print(f"interrupted: {detail}", file=sys.stderr)
    sys.exit(130)


def remove_run_dir_if_empty(folder: Path | None = None) -> None:
    """Remove a run folder (default: this run's Hydra folder) when it holds only Hydra's own records
    (``.hydra/``, the job log), and its empty parents up to the working folder (``outputs/predict/<date>``), so
    that a refused command leaves nothing behind. A sweep's job folders are kept: they record the job."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra run
        return
    if hydra.mode != RunMode.RUN:
        return
    folder = Path(folder or hydra.runtime.output_dir)
    records = {folder / ".hydra", folder / f"{hydra.job.name}.log"}
    if not folder.is_dir() or any(path not in records for path in folder.iterdir()):
        return
    for handler in logging.root.handlers[:]:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
            handler.close()
            logging.root.removeHandler(handler)
    shutil.rmtree(folder, ignore_errors=True)
    stop = Path.cwd().resolve()
    parent = folder.resolve().parent
    while parent != stop and stop in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


# --------------------------------------------------------------------------------------------------------------
# Turning exceptions into one line
# --------------------------------------------------------------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def user_message(error: BaseException) -> str | None:
    """The one line a user error is reported as, or None when ``error`` is not a user error (a bug)."""
    chain = list(_chain(error))
    for link in chain:
        if isinstance(link, RssegError):
            return _one_line(str(link), keep_lines=True)
    # The innermost explanation wins: OmegaConf's refusal of a value over Hydra's "Error merging override".
    for translate in (_omegaconf_message, _hydra_message, _instantiate_message, _os_message):
        for link in chain:
            message = translate(link)
            if message:
                return message
    return None


def _one_line(text: str, keep_lines: bool = False) -> str:
    """Messages that list several problems keep their indented lines; any other text is joined into one."""
    text = text.strip()
    if keep_lines:
        return text
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _omegaconf_message(error: BaseException) -> str | None:
    from omegaconf.errors import (
        ConfigAttributeError,
        ConfigKeyError,
        InterpolationResolutionError,
        MissingMandatoryValue,
        ValidationError,
    )

    from rsseg.config.checks import expectation, show_value, unknown_key

    known = (ValidationError, ConfigKeyError, ConfigAttributeError, MissingMandatoryValue, InterpolationResolutionError)
    if not isinstance(error, known):
        return None
    key = str(getattr(error, "full_key", None) or getattr(error, "key", None) or "config")
    schema = getattr(error, "object_type", None)
    if isinstance(error, ValidationError):
        text = str(error)
        why, expected = _refusal(text)
        expected = expectation(schema, key) or expected
        return f"{key}={show_value(getattr(error, 'value', None))}: {why}; expected {expected}"
    if isinstance(error, (ConfigKeyError, ConfigAttributeError)):
        parent = getattr(error, "parent_node", None)
        keys = [str(k) for k in parent.keys()] if parent is not None and hasattr(parent, "keys") else []
        if schema is not None and schema is not dict:
            where = f"the {schema.__name__.removesuffix('Config').lower()} config"
        else:
            where = f"{key.rsplit('.', 1)[0]}" if "." in key else "this config"
        return unknown_key(key, where, keys)
    if isinstance(error, MissingMandatoryValue):
        return f"{key}: no value given (???); expected {key}=<value> on the command line"
    return f"{key}: {_one_line(str(error).split('    full_key')[0])}; expected an interpolation that resolves"


def _refusal(text: str) -> tuple[str, str]:
    """Why OmegaConf refused a value, and what its type wanted, in words."""
    for name, why, words in (("Float", "not a number", "a number"), ("Integer", "not an integer", "an integer"),
                             ("Boolean", "not true or false", "true or false")):
        if f"converted to {name}" in text:
            return why, words
    if "list or tuple" in text:
        return "not a list", "a list, e.g. [1,2,3]"
    if "is not a subclass of" in text or "DictConfig" in text:
        return "not a mapping", "a mapping of keys to values"
    return "not a value of this key's type", "a value of the schema's type"


def _hydra_message(error: BaseException) -> str | None:
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    from rsseg.config.checks import did_you_mean
    from rsseg.runtime.extras import missing_plugin_message

    if isinstance(error, MissingConfigException):
        missing = str(getattr(error, "missing_cfg_file", "") or "")
        plugin = missing_plugin_message(missing, str(error))
        if plugin:
            return plugin
        options = list(getattr(error, "options", None) or [])
        group, _, choice = missing.rpartition("/")
        if group and options:
            return (f"{group}={choice}: no such option{did_you_mean(choice, options)}; expected one of "
                    f"{', '.join(sorted(options))}")
        first = str(error).strip().splitlines()[0]
        return _one_line(first)
    if isinstance(error, OverrideParseException):
        detail = str(error).strip().splitlines()
        return f"{error.override}: not an override Hydra can read ({detail[0].strip() if detail else 'syntax'}); " \
               f"expected key=value (quote values holding spaces, brackets or braces)"
    if isinstance(error, HydraException) and not _is_instantiation(error):
        lines = [line for line in str(error).strip().splitlines() if "+" not in line.split(" ")[0:3]
                 and not line.startswith("To append")]
        return _one_line("\n".join(lines)) or None
    return None


def _is_instantiation(error: BaseException) -> bool:
    from hydra.errors import InstantiationException

    return isinstance(error, InstantiationException)


def _instantiate_message(error: BaseException) -> str | None:
    """A constructor called by Hydra refused its arguments: name the config node and say why."""
    if not _is_instantiation(error):
        return None
    text = str(error)
    key = text.rsplit("full_key:", 1)[1].strip() if "full_key:" in text else None
    target = text.split("'", 2)[1] if text.count("'") >= 2 else "the target"
    cause = error.__cause__
    why = _one_line(str(cause)) if cause is not None else _one_line(text)
    if isinstance(cause, TypeError) and "unexpected keyword argument" in why:
        argument = why.rsplit("'", 2)[-2] if why.count("'") >= 2 else "?"
        return f"{key or target}.{argument}: not an argument of {target}; expected one of its parameters"
    return f"{key or target}: {target} refused its arguments: {why}"


def _os_message(error: BaseException) -> str | None:
    if not isinstance(error, OSError) or not getattr(error, "filename", None):
        return None
    import errno

    denied = "permission denied; expected a folder you can write to (or read, for inputs)"
    reasons = {errno.EACCES: denied, errno.EPERM: denied,
               errno.EROFS: "read-only file system; expected a writable location",
               errno.ENOSPC: "no space left on the device; expected room for the outputs",
               errno.ENOENT: "no such file or folder; expected an existing path"}
    reason = reasons.get(error.errno, f"{error.strerror or type(error).__name__}; expected a path rsseg can use")
    return f"{error.filename}: {reason}"

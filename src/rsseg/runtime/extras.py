"""The integrations not every run needs, installed as extras of the rsseg package, and the one line that names the
extra when one is missing: ``pip install 'rsseg[wandb]'``, ``[launchers]`` (Hydra's joblib and submitit launchers),
``[optuna]`` (Hydra's Optuna sweeper), ``[onnx]`` (onnx and onnxruntime), ``[all]``.

A missing extra is found before anything runs: the logger config is checked against the installed packages
(:func:`check_extras`), and a Hydra launcher or sweeper whose plugin is not installed, which Hydra reports as a
config it cannot find, is named with its extra (:func:`missing_plugin_message`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from rsseg.errors import ConfigError

# Hydra's config of each plugin (which the plugin registers when installed) -> (the extra, its package).
PLUGIN_CONFIGS = {
    "hydra/launcher/joblib": ("launchers", "hydra-joblib-launcher"),
    "hydra/launcher/submitit_slurm": ("launchers", "hydra-submitit-launcher"),
    "hydra/launcher/submitit_local": ("launchers", "hydra-submitit-launcher"),
    "hydra/sweeper/optuna": ("optuna", "hydra-optuna-sweeper"),
}
# Logger targets -> the module they import and its extra.
LOGGER_MODULES = {"WandbLogger": ("wandb", "wandb")}


def install_line(extra: str) -> str:
    return f"pip install 'rsseg[{extra}]'"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that is not a package, a module without a spec
        return False


def require(module: str, what: str, extra: str):
    """Import the optional ``module`` that ``what`` needs, or refuse in one line naming the extra."""
    if not installed(module):
        raise ConfigError(f"{what} needs the {extra} extra: {install_line(extra)}")
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(f"{what} needs the {extra} extra, whose {module} does not import ({error}): "
                          f"{install_line(extra)}") from None


def check_extras(cfg) -> None:
    """Refuse a config whose loggers need a package that is not installed (``logger=wandb`` without wandb)."""
    loggers = cfg.get("logger") if hasattr(cfg, "get") else None
    if not hasattr(loggers, "items"):
        return
    for name, node in loggers.items():
        target = str(node.get("_target_", "")) if hasattr(node, "get") else ""
        for suffix, (module, extra) in LOGGER_MODULES.items():
            if target.endswith(suffix) and not installed(module):
                raise ConfigError(f"logger={name} needs the {extra} extra: {install_line(extra)}")


def missing_plugin_message(missing: str, text: str, argv: list[str] | None = None) -> str | None:
    """The line for Hydra's "could not find hydra/launcher/joblib" when the plugin that provides it is not
    installed, naming the choice that asked for it and the extra: the config of the error (``In
    'hydra/launcher/parallel'``), or, where Hydra names only its own (an ``override /hydra/sweeper: optuna`` in
    ``hparams_search/lr_loss``), the command-line choice whose config holds that override."""
    if missing not in PLUGIN_CONFIGS:
        return None
    extra, package = PLUGIN_CONFIGS[missing]
    asked = text.split("In '", 1)[1].split("'", 1)[0] if "In '" in text else missing
    if asked == "hydra/config":
        asked = _choice_overriding(missing, sys.argv[1:] if argv is None else argv) or missing
    group, _, choice = asked.rpartition("/")
    return f"{group}={choice} needs the {extra} extra ({package}): {install_line(extra)}"


def _choice_overriding(missing: str, argv: list[str]) -> str | None:
    """The ``group=option`` of ``argv`` whose config (in rsseg's conf/) overrides ``missing``'s group with it."""
    from rsseg.config import CONF_DIR

    group, _, choice = missing.rpartition("/")
    for override in argv:
        key, _, value = override.lstrip("+").partition("=")
        path = CONF_DIR / key / f"{value}.yaml"
        if value and path.is_file() and f"override /{group}: {choice}" in path.read_text():
            return f"{key}/{value}"
    return None

"""Reading checkpoint files safely, saying in rsseg's words what is wrong with one that does not read, and
rebuilding the trained network from one.

``torch.load`` runs with ``weights_only=True``: only tensors and plain values are unpickled, so a tampered file
never runs code. Its failures speak of unpickler internals ("Unsupported operand 101", "pop from empty list")
and advise retrying with ``weights_only=False``, which would run that code; :func:`read_checkpoint` reports the
file's real state instead (missing, a folder, empty, not a checkpoint at all, truncated, holding Python objects).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from rsseg.errors import DataError

EXPECTED = "expected the .ckpt file of a trained rsseg model (a run's checkpoints/best.ckpt or checkpoints/last.ckpt)"


def read_checkpoint(path: str | Path, key: str = "ckpt", mmap: bool = False) -> dict[str, Any]:
    """The checkpoint's contents (tensors on the CPU); ``mmap`` maps tensors lazily (cheap for the config).

    ``key`` names the config key the path came from (``ckpt``, ``ckpt_path``, ``resume``) in error messages.
    """
    path = Path(str(path)).expanduser()
    where = f"{key}={path}"
    if not path.exists():
        raise DataError(f"{where}: checkpoint not found; {EXPECTED}")
    if path.is_dir():
        found = sorted(path.glob("**/*.ckpt"))
        hint = f" (it holds {found[0]})" if found else ""
        raise DataError(f"{where}: a folder{hint}; {EXPECTED}")
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise DataError(f"{where}: empty file (0 bytes); {EXPECTED}")
    import torch  # after the checks above: a refused path never pays for importing torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and head[:2] == b"PK")
    except Exception as error:  # noqa: BLE001 - every unpickling failure is described from the file itself
        raise DataError(f"{where}: {_why_unreadable(head, error)}; {EXPECTED}") from None
    if not isinstance(checkpoint, dict):
        raise DataError(f"{where}: holds a {type(checkpoint).__name__}, not a checkpoint dictionary; {EXPECTED}")
    return checkpoint


def _why_unreadable(head: bytes, error: Exception) -> str:
    text = str(error)
    if "GLOBAL" in text or "Unsupported global" in text:
        return ("it holds Python objects besides tensors and plain values, which rsseg does not unpickle "
                "(they could run code)")
    if head[:2] == b"PK":
        return "a damaged or truncated checkpoint (its zip archive cannot be read)"
    if head[:1] == b"\x80":
        return "a pickle file that is not a PyTorch checkpoint"
    shown = head.decode("ascii", "replace") if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else head.hex()
    return f"not a PyTorch checkpoint (it starts with {shown!r})"


def stored_config(checkpoint: dict, where: str) -> dict:
    """The training config an rsseg checkpoint stores (``hyper_parameters.cfg`` with model and data)."""
    cfg = (checkpoint.get("hyper_parameters") or {}).get("cfg")
    if not isinstance(cfg, dict) or "model" not in cfg or "data" not in cfg:
        raise DataError(f"{where}: a checkpoint without rsseg's training config (hyper_parameters.cfg with model "
                        f"and data); {EXPECTED}")
    if "state_dict" not in checkpoint:
        raise DataError(f"{where}: a checkpoint without weights (state_dict); {EXPECTED}")
    return cfg


def load_model_from_checkpoint(path: str | Path, map_location="cpu"):
    """Rebuild the trained network from an rsseg checkpoint alone; returns ``(model.eval(), cfg)``."""
    from omegaconf import OmegaConf

    from rsseg.models.hub import instantiate_model

    checkpoint = read_checkpoint(path)
    cfg = OmegaConf.create(stored_config(checkpoint, f"ckpt={path}"))
    model = instantiate_model(cfg.model, offline=True)
    state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    check_weights_fit(model, state, f"ckpt={path}", str(cfg.model.get("_target_", "the model")))
    model.load_state_dict(state)
    return model.to(map_location).eval(), cfg


def check_weights_fit(model, state: dict, where: str, target: str) -> None:
    """Refuse, in one line, weights that are not the model's: a stored config that names another model (or
    other sizes) than the network its weights come from, which ``load_state_dict`` reports as a traceback."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or reshaped):
        return
    parts = [f"{len(keys)} {what} (first {keys[0]})" for keys, what in
             ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape")) if keys]
    raise DataError(f"{where}: its weights are not those of the model its config names ({target}): "
                    f"{', '.join(parts)}; expected the checkpoint rsseg train wrote for that model")

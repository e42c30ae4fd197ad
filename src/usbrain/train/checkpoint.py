"""Checkpoints that describe themselves and load without unpickling code.

A checkpoint is a folder, replaced atomically on every save (a failed save, e.g. a full disk,
leaves the previous one intact)::

    config.yaml        the experiment's full config
    meta.json          what it is (kind), step, usbrain and torch versions
    model.safetensors  weights being trained
    ema.safetensors    their exponential moving average (used for inference)
    state.pt           optimizer / grad-scaler state and step, read with weights_only=True
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from usbrain import __version__
from usbrain.config import Config, load_config, save_config
from usbrain.errors import InputError
from usbrain.files import atomic_dir
from usbrain.weights import read_meta, read_weights, save_weights

FILES = ("config.yaml", "meta.json", "model.safetensors", "ema.safetensors", "state.pt")


@dataclass
class Checkpoint:
    """A loaded checkpoint: config, meta, weights (CPU tensors) and training state."""

    path: Path
    config: Config
    meta: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    state: dict[str, Any]


def save_checkpoint(
    path: str | Path,
    config: Config,
    kind: str,
    step: int,
    model: nn.Module,
    ema: nn.Module,
    state: dict[str, Any],
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically, replacing any previous one."""
    meta = {
        "kind": kind,
        "step": int(step),
        "usbrain_version": __version__,
        "torch_version": torch.__version__,
        **(extra_meta or {}),
    }
    with atomic_dir(path, overwrite=True) as tmp:
        save_config(config, tmp / "config.yaml")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        save_weights(model, tmp / "model.safetensors")
        save_weights(ema, tmp / "ema.safetensors")
        torch.save({"step": int(step), **state}, tmp / "state.pt")
    return Path(path)


def load_checkpoint(path: str | Path, kind: str | None = None) -> Checkpoint:
    """Read a checkpoint folder, refusing anything incomplete, corrupt or unsafe.

    ``kind`` (e.g. ``"autoencoder"``) must match what the checkpoint says it is.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: checkpoint folder not found")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path}: not a usbrain checkpoint (missing {', '.join(missing)})")
    config = load_config(path=path / "config.yaml")
    meta = read_meta(path)
    if kind is not None and meta.get("kind") != kind:
        raise InputError(f"{path}: is a {meta.get('kind')!r} checkpoint, expected {kind!r}")
    weights = {name: read_weights(path / f"{name}.safetensors") for name in ("model", "ema")}
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{path / 'state.pt'}: refused: it holds objects other than tensors and plain "
            f"values ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path / 'state.pt'}: corrupt or truncated ({exc})") from None
    return Checkpoint(path, config, meta, weights["model"], weights["ema"], state)

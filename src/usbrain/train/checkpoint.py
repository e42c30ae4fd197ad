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

import safetensors.torch
import torch
from torch import nn

from usbrain import __version__
from usbrain.config import Config, load_config, save_config
from usbrain.errors import InputError
from usbrain.files import atomic_dir

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


def save_weights(module: nn.Module, file: Path, dtype: torch.dtype | None = None) -> None:
    """``module``'s state as safetensors, floating tensors cast to ``dtype`` if given (not
    atomic by itself: called inside an atomic folder). Loading casts back to the module's."""

    def stored(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().to("cpu")
        return v.to(dtype) if dtype is not None and v.is_floating_point() else v

    # safetensors refuses shared or non-contiguous storage; clone to own memory on the CPU.
    state = {k: stored(v).contiguous().clone() for k, v in module.state_dict().items()}
    safetensors.torch.save_file(state, file)


def read_weights(file: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a corrupt or truncated file is an InputError naming it."""
    try:
        return safetensors.torch.load_file(file)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise InputError(f"{file}: corrupt or truncated weights ({exc})") from None


def read_meta(folder: Path) -> dict[str, Any]:
    """A checkpoint or pipeline folder's ``meta.json``."""
    try:
        return json.loads((folder / "meta.json").read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{folder / 'meta.json'}: corrupt ({exc})") from None


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


def load_weights(module: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load ``weights`` into ``module`` strictly; a mismatch names the checkpoint."""
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise InputError(
            f"{source}: weights do not fit this architecture ({detail}); was it trained with "
            "another config?"
        ) from None

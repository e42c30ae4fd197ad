"""Weights on disk: safetensors files and the ``meta.json`` of the folders that hold them.

Below everything that saves or loads a network (``pipeline.py``, ``train/checkpoint.py``,
``evaluate/segmenter.py``): nothing is unpickled, a corrupt file is an :class:`InputError`
naming it, and weights that do not fit an architecture say which checkpoint they came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from usbrain.errors import InputError


def save_weights(module: nn.Module, file: Path, dtype: torch.dtype | None = None) -> None:
    """``module``'s state as safetensors, floating tensors cast to ``dtype`` if given (not
    atomic by itself: called inside an atomic folder). Loading casts back to the module's."""

    def stored(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().to("cpu")
        return v.to(dtype) if dtype is not None and v.is_floating_point() else v

    # safetensors refuses shared or non-contiguous storage; clone to own memory on the CPU.
    state = {k: stored(v).contiguous().clone() for k, v in module.state_dict().items()}
    # Written by Python, not save_file (which makes 0600 files): the umask sets the mode.
    Path(file).write_bytes(safetensors.torch.save(state))


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

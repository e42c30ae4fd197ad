"""The lesion segmenter: a small MONAI 3D U-Net that finds lesions, to measure lesion fidelity.

It is trained on the pseudo-pathology pairs of a prepared cache's *training* split (scans with a
lesion painted in, and healthy scans as negatives), never on the scans a benchmark evaluates,
with MONAI's ``DiceCELoss`` on one sigmoid logit per voxel and random flips as augmentation
(:func:`train_segmenter`); or, by the same loop, on model-space pairs held in memory
(:class:`PairDataset` and :func:`fit_segmenter`, as the downstream-utility benchmark does).
It works on model-space volumes: (D, H, W) float in [0, 1] on the cache's grid.

A segmenter is a folder, written atomically, that describes itself (no pickle)::

    segmenter.safetensors   the network's weights
    segmenter.json          kind, SegmenterConfig, model space, training summary, versions

>>> config = SegmenterConfig(channels=(8, 16), steps=2)
>>> seg = Segmenter(build_network(config), config, {"space": {"size": [16, 16, 16]}})
>>> segment(seg, np.zeros((16, 16, 16), np.float32)).shape
(16, 16, 16)
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from torch import nn
from torch.utils.data import Dataset

from usbrain import __version__
from usbrain.config import ModelSpace
from usbrain.data.cache import PreparedDataset
from usbrain.data.datasets import Split
from usbrain.errors import ConfigError, InputError, ShapeMismatchError
from usbrain.evaluate.lesions import lesion_dice
from usbrain.files import atomic_dir, claim
from usbrain.progress import progress_bar
from usbrain.weights import load_weights, read_weights, save_weights

KIND = "segmenter"
WEIGHTS_FILE = "segmenter.safetensors"
META_FILE = "segmenter.json"


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything that defines a segmenter and its training run.

    ``channels``: U-Net feature channels per level (each level after the first halves the grid,
    so the grid is padded to a multiple of ``2 ** (len(channels) - 1)``); ``steps``: optimizer
    steps of ``batch_size`` whole volumes; ``lr``: Adam learning rate; ``seed``: weights, batch
    order and flips; ``threshold``: sigmoid probability above which a voxel is lesion.
    """

    channels: tuple[int, ...] = (16, 32, 64)
    num_res_units: int = 1
    steps: int = 200
    batch_size: int = 2
    lr: float = 3e-3
    seed: int = 0
    threshold: float = 0.5
    flips: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        problems = []
        if len(self.channels) < 2 or min(self.channels) < 1:
            problems.append(f"channels={self.channels} (need two or more levels, each ≥ 1)")
        if self.steps < 1:
            problems.append(f"steps={self.steps} (need ≥ 1)")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} (need ≥ 1)")
        if not self.lr > 0:
            problems.append(f"lr={self.lr} (need > 0)")
        if not 0.0 < self.threshold < 1.0:
            problems.append(f"threshold={self.threshold} (need a probability in (0, 1))")
        if problems:
            raise ConfigError(f"segmenter config: {'; '.join(problems)}")

    @property
    def multiple(self) -> int:
        """The network's grid must be a multiple of this many voxels per axis."""
        return 2 ** (len(self.channels) - 1)


@dataclass
class Segmenter:
    """A trained segmenter: the ``network`` (1 → 1 logit channel), its ``config`` and ``meta``
    (what :data:`META_FILE` says: model space, training summary, versions)."""

    network: nn.Module
    config: SegmenterConfig
    meta: dict[str, Any] = field(default_factory=dict)


def build_network(config: SegmenterConfig) -> nn.Sequential:
    """A MONAI 3D U-Net, 1 input channel → ``channels[0]`` features, then a 1×1×1 convolution to
    1 logit channel; instance norm, so train and eval modes compute the same thing. Its initial
    weights come from torch's global RNG.

    Why the head: with ``out_channels=1`` MONAI's U-Net ends in a one-channel instance-normalised
    layer, which learns lesions of a few voxels in a 48³ grid slowly (loss stuck near 1 for 150
    steps where this version is at 0.25 after 70, measured on a 24³ cache of cube lesions).
    """
    unet = UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=config.channels[0],
        channels=config.channels,
        strides=(2,) * (len(config.channels) - 1),
        num_res_units=config.num_res_units,
    )
    head = nn.Conv3d(config.channels[0], 1, kernel_size=1)
    return nn.Sequential(OrderedDict(unet=unet, head=head))


def logits(network: nn.Module, image: torch.Tensor, multiple: int) -> torch.Tensor:
    """``network``'s logits for ``image`` (B, 1, D, H, W), any grid: zero-padded at the far end
    of each axis to a multiple of ``multiple`` voxels, run, and cropped back. (B, 1, D, H, W)."""
    size = image.shape[-3:]
    pad = [(-s) % multiple for s in size]
    if any(pad):
        image = F.pad(image, (0, pad[2], 0, pad[1], 0, pad[0]))
    return network(image)[..., : size[0], : size[1], : size[2]]


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless batches of indices from seeded permutations of ``range(n)`` (every scan once per
    pass; a batch may span two passes)."""
    order: list[int] = []
    while True:
        while len(order) < batch_size:
            order += torch.randperm(n, generator=generator).tolist()
        yield order[:batch_size]
        order = order[batch_size:]


def _flip(items: list[dict], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``items`` into (B, 1, D, H, W) images and masks, each item flipped along each
    spatial axis with probability 1/2 (the same flips for its image and mask)."""
    images, masks = [], []
    for item in items:
        axes = [a + 1 for a in range(3) if torch.rand((), generator=generator) < 0.5]
        images.append(item["image"].flip(axes) if axes else item["image"])
        masks.append(item["mask"].flip(axes) if axes else item["mask"])
    return torch.stack(images), torch.stack(masks)


class PairDataset(Dataset):
    """In-memory model-space ``(image, mask)`` pairs, with items like
    :class:`~usbrain.data.cache.PreparedDataset`'s, to train a segmenter on pairs that are not in
    a cache (e.g. synthetic ones).

    ``images``: (D, H, W) float in [0, 1]; ``masks``: (D, H, W) {0, 1} (an empty mask: a healthy
    scan, a negative); all on ``space``'s grid, else
    :class:`~usbrain.errors.ShapeMismatchError`. Items: ``image`` and ``mask`` (1, D, H, W)
    float32, ``has_mask`` bool (the mask is not empty), ``subject`` str.

    >>> space = ModelSpace(size=(8, 8, 8), spacing=4.0)
    >>> data = PairDataset([np.zeros((8, 8, 8))], [np.ones((8, 8, 8))], space, ["a"])
    >>> data[0]["image"].shape, data[0]["has_mask"], len(data)
    (torch.Size([1, 8, 8, 8]), True, 1)
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        space: ModelSpace,
        subjects: Sequence[str] | None = None,
    ) -> None:
        subjects = [f"pair-{i}" for i in range(len(images))] if subjects is None else subjects
        if not len(images) == len(masks) == len(subjects):
            raise InputError(
                f"pairs: {len(images)} images, {len(masks)} masks and {len(subjects)} subjects; "
                "give one mask and one subject per image"
            )
        grid = tuple(int(s) for s in space.size)
        for subject, image, mask in zip(subjects, images, masks, strict=True):
            if np.shape(image) != grid or np.shape(mask) != grid:
                raise ShapeMismatchError(
                    f"pair {subject!r}: image {np.shape(image)} and mask {np.shape(mask)} are not "
                    f"both on the model grid {grid}; bring them to model space first"
                )
        self.space = space
        self.images = [np.asarray(i, np.float32) for i in images]
        self.masks = [(np.asarray(m) > 0).astype(np.float32) for m in masks]
        self.subjects = list(subjects)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {
            "image": torch.from_numpy(self.images[index])[None],
            "mask": torch.from_numpy(self.masks[index])[None],
            "has_mask": bool(self.masks[index].any()),
            "subject": self.subjects[index],
        }


def fit_segmenter(
    data: PreparedDataset | PairDataset,
    config: SegmenterConfig | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Segmenter:
    """A fresh segmenter trained on every item of ``data`` (model-space pairs on ``data.space``).

    Each step draws ``config.batch_size`` whole volumes (seeded permutations, so every scan is
    seen once per pass), flips each along random axes, and takes an Adam step on
    ``DiceCELoss(sigmoid=True, batch=True)`` (Dice over the whole batch, so healthy scans with
    empty masks add no division by zero). On CPU the same seed and data give the same weights.
    ``meta`` holds the model space, the number of scans, the final loss and the seconds taken.
    """
    config = config or SegmenterConfig()
    if len(data) == 0:
        raise InputError("no (image, mask) pairs to train the segmenter on")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = build_network(config).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    loss_fn = DiceCELoss(sigmoid=True, batch=True)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    batches = _batches(len(data), config.batch_size, generator)
    losses: list[float] = []
    start = time.perf_counter()
    network.train()
    bar = progress_bar(range(config.steps), desc="segmenter", unit="step", disable=not progress)
    for _ in bar:
        items = [data[i] for i in next(batches)]
        if config.flips:
            image, mask = _flip(items, generator)
        else:
            image = torch.stack([i["image"] for i in items])
            mask = torch.stack([i["mask"] for i in items])
        loss = loss_fn(logits(network, image.to(device), config.multiple), mask.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    seconds = time.perf_counter() - start
    network.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    meta = {
        "space": asdict(data.space),
        "scans": len(data),
        "final_loss": float(np.mean(tail)),
        "train_seconds": round(seconds, 2),
        "device": str(device),
    }
    return Segmenter(network, config, meta)


def train_segmenter(
    cache: str | Path,
    config: SegmenterConfig | None = None,
    out_dir: str | Path = "segmenter",
    progress: bool = True,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
) -> Path:
    """Train a segmenter on the training split of the prepared cache at ``cache`` and save it.

    Training is :func:`fit_segmenter` on the split's scans. When the cache has a validation
    split its mean lesion Dice is recorded in ``segmenter.json``. Returns ``out_dir``; an
    existing one is refused unless ``overwrite``.
    """
    config = config or SegmenterConfig()
    with claim(out_dir, overwrite) as out_dir:
        data = PreparedDataset(cache, Split.TRAIN)
        if len(data) == 0:
            raise InputError(
                f"{Path(cache) / 'manifest.csv'}: no scans in the 'train' split to train the "
                "segmenter on"
            )
        segmenter = fit_segmenter(data, config, progress, device)
        fitted = dict(segmenter.meta)
        del fitted["scans"]
        segmenter.meta = {
            "space": fitted.pop("space"),
            "trained_on": {
                "cache": str(Path(cache)),
                "split": str(Split.TRAIN),
                "scans": len(data),
            },
            **fitted,
        }
        if len(PreparedDataset(cache, Split.VAL)):
            scores = segmenter_dice(segmenter, cache, Split.VAL)
            segmenter.meta["val_dice"] = float(np.mean(list(scores.values())))
            segmenter.meta["val_scans"] = len(scores)
        return save_segmenter(segmenter, out_dir, overwrite=overwrite)


def save_segmenter(segmenter: Segmenter, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``segmenter`` as a folder (:data:`WEIGHTS_FILE` + :data:`META_FILE`), atomically."""
    meta = {
        **segmenter.meta,
        "kind": KIND,
        "config": asdict(segmenter.config),
        "usbrain_version": __version__,
        "torch_version": torch.__version__,
        "monai_version": monai.__version__,
    }
    with atomic_dir(out_dir, overwrite) as tmp:
        save_weights(segmenter.network, tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    return Path(out_dir)


def _read_config(raw: Any, file: Path) -> SegmenterConfig:
    names = {f.name for f in fields(SegmenterConfig)}
    if not isinstance(raw, dict) or not set(raw) <= names:
        unknown = sorted(set(raw) - names) if isinstance(raw, dict) else raw
        raise InputError(f"{file}: 'config' is not a segmenter config (unknown: {unknown})")
    try:
        return SegmenterConfig(**raw)
    except (TypeError, ValueError, ConfigError) as exc:
        raise InputError(f"{file}: bad 'config' ({exc})") from None


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> Segmenter:
    """Read a segmenter folder written by :func:`save_segmenter`, in eval mode on ``device``.

    A missing, corrupt or foreign file raises :class:`~usbrain.errors.InputError` naming it.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: segmenter folder not found (train one with `usbrain train-seg`)")
    meta_file, weights_file = path / META_FILE, path / WEIGHTS_FILE
    for file in (meta_file, weights_file):
        if not file.is_file():
            raise InputError(
                f"{file}: missing; {path} is not a segmenter (train one with `usbrain train-seg`)"
            )
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_file}: corrupt ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        raise InputError(f"{meta_file}: describes a {kind!r}, not a {KIND!r}")
    config = _read_config(meta.get("config"), meta_file)
    network = build_network(config)
    load_weights(network, read_weights(weights_file), str(weights_file))
    return Segmenter(network.to(device).eval(), config, meta)


def _model_grid(segmenter: Segmenter) -> tuple[int, ...] | None:
    size = segmenter.meta.get("space", {}).get("size")
    return None if size is None else tuple(int(s) for s in size)


def segmenter_space(segmenter: Segmenter) -> ModelSpace | None:
    """The model space (grid size and spacing) ``segmenter`` was trained on, from its meta;
    None when the meta does not say."""
    space = segmenter.meta.get("space")
    if not isinstance(space, dict) or "size" not in space or "spacing" not in space:
        return None
    return ModelSpace(size=tuple(int(s) for s in space["size"]), spacing=float(space["spacing"]))


def segment(segmenter: Segmenter, image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The lesion ``segmenter`` finds in ``image``: uint8 {0, 1} (D, H, W), the image's grid.

    ``image``: (D, H, W) float in [0, 1], on the model grid the segmenter was trained on (a
    prepared cache's grid); another shape raises :class:`~usbrain.errors.ShapeMismatchError`.
    A voxel is lesion where the sigmoid probability exceeds ``threshold`` (default: the
    config's, 0.5).
    """
    image = np.asarray(image)
    grid = _model_grid(segmenter)
    if image.ndim != 3 or (grid is not None and image.shape != grid):
        raise ShapeMismatchError(
            f"segment: image of shape {image.shape} is not on the segmenter's model grid "
            f"{grid or '(D, H, W)'}; bring it to model space first (see `usbrain prepare`)"
        )
    threshold = segmenter.config.threshold if threshold is None else threshold
    device = next(segmenter.network.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device)
    with torch.inference_mode():
        probability = torch.sigmoid(logits(segmenter.network, x, segmenter.config.multiple))
    return (probability[0, 0] > threshold).to(torch.uint8).cpu().numpy()


def segmenter_dice(
    segmenter: Segmenter, cache: str | Path, split: Split | str = Split.VAL
) -> dict[str, float]:
    """Lesion Dice (:func:`~usbrain.evaluate.lesions.lesion_dice`) of the segmenter on each scan
    of ``split`` in the prepared cache at ``cache``, by subject (healthy scans: 1 when nothing is
    found, else 0)."""
    data = PreparedDataset(cache, split)
    scores = {}
    for i in range(len(data)):
        item = data[i]
        found = segment(segmenter, item["image"][0].numpy())
        scores[item["subject"]] = lesion_dice(item["mask"][0].numpy(), found)
    return scores

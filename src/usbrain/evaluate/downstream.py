"""Downstream utility (``usbrain benchmark --downstream``): do synthetic pairs help a segmenter?

Three lesion segmenters (:mod:`usbrain.evaluate.segmenter`) are trained with the same config,
steps and seed, on model-space (image, mask) pairs:

- ``real``: the training split's scans with their lesion masks (a scan whose mask is empty is a
  negative, as ``usbrain train-seg`` uses it);
- ``real + usb``: plus one synthetic pair per training scan with a known healthy version: USB
  lesion insertion (:func:`usbrain.tasks.lesion.lesion`, the benchmark's pipeline and sampling)
  of *another* training subject's real mask into that healthy scan;
- ``real + copy-paste``: plus the same healthy scans with the same masks filled by copy-paste
  (:func:`~usbrain.evaluate.baselines.paste_lesion_intensities`, intensities from the mask's own
  scan);

and each is scored by lesion Dice on the held-out split's real pathological scans, which none of
them saw. A small config (the segmenter's defaults, few steps, a coarse model grid) runs on CPU;
the same code runs at scale on GPU.

A donor mask is used on the recipient's grid as is when both scans share a grid (the built-in
cohort, scans registered to MNI); otherwise it is carried through model space (same place
relative to the brain's centre). It is cut to the recipient's brain; a donor whose lesion does
not survive (empty, cut by the model grid, vanishing at the model's resolution) is passed over
for the next one, and a recipient with no usable donor is listed under ``skipped``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from usbrain.config import ModelSpace
from usbrain.data.datasets import Record, read_manifest
from usbrain.data.masks import lesion_ml
from usbrain.data.nifti import GRID_ATOL_MM, Volume, load_image, load_mask
from usbrain.data.preprocess import VolumeKind, brain_mask, geometry_for, preprocess, to_native
from usbrain.data.scan import Scan
from usbrain.errors import InputError
from usbrain.evaluate.baselines import paste_lesion_intensities
from usbrain.evaluate.lesions import lesion_dice
from usbrain.evaluate.segmenter import (
    PairDataset,
    SegmenterConfig,
    fit_segmenter,
    segment,
)
from usbrain.evaluate.summary import nan_median
from usbrain.pipeline import Pipeline
from usbrain.tasks.lesion import lesion

TRAIN_SPLIT = "train"
SETS = ("real", "real + usb", "real + copy-paste")


@dataclass(frozen=True)
class ManifestScan:
    """A native scan of the manifest with its lesion mask (maybe empty) and healthy version."""

    subject: str
    image: Volume
    mask: Volume | None
    healthy: Volume | None

    @property
    def has_lesion(self) -> bool:
        return self.mask is not None and bool(self.mask.data.any())


@dataclass(frozen=True)
class DownstreamData:
    """What the downstream benchmark reads from a manifest: the training split's scans with a
    mask (``train``), those of them with a healthy version (``recipients``) and with a lesion
    (``donors``), of ``train_manifest``, and the held-out split's scans with a lesion
    (``test``) of ``manifest``."""

    manifest: Path
    train_manifest: Path
    split: str
    train: list[ManifestScan]
    recipients: list[ManifestScan]
    donors: list[ManifestScan]
    test: list[ManifestScan]


def _scan(record: Record) -> ManifestScan:
    return ManifestScan(
        record.subject,
        load_image(record.image),
        None if record.mask is None else load_mask(record.mask),
        None if record.healthy_image is None else load_image(record.healthy_image),
    )


def read_downstream(
    manifest: str | Path, split: str = "test", train_manifest: str | Path | None = None
) -> DownstreamData:
    """The scans of ``manifest`` the downstream benchmark needs, checked before anything runs.

    The segmenters train on the training split of ``train_manifest`` (default ``manifest``; a
    held-out cohort has no training split, the generator's own training cohort does) and are
    scored on ``split`` of ``manifest``. Raises :class:`~usbrain.errors.InputError` naming the
    manifest when the training split has no scan with a lesion mask, no healthy scan with
    another subject's lesion to insert, or the held-out ``split`` has no scan with a lesion.
    """
    manifest = Path(manifest)
    train_manifest = manifest if train_manifest is None else Path(train_manifest)
    if split == TRAIN_SPLIT:
        raise InputError(
            f"{manifest}: --downstream scores on the held-out split, not on '{TRAIN_SPLIT}' (the "
            "split it trains on); give --split test or val"
        )
    train = [
        _scan(r)
        for r in read_manifest(train_manifest)
        if r.split == TRAIN_SPLIT and r.mask is not None
    ]
    donors = [s for s in train if s.has_lesion]
    recipients = [
        s for s in train if s.healthy is not None and any(d.subject != s.subject for d in donors)
    ]
    test = [
        s for s in (_scan(r) for r in read_manifest(manifest) if r.split == split) if s.has_lesion
    ]
    problems = {}
    if not donors:
        problems[train_manifest] = [f"no '{TRAIN_SPLIT}' scan with a lesion mask to train on"]
    if not recipients:
        problems.setdefault(train_manifest, []).append(
            f"no '{TRAIN_SPLIT}' scan with a healthy_image (and another {TRAIN_SPLIT} subject's "
            "lesion mask) to insert synthetic lesions into"
        )
    if not test:
        problems.setdefault(manifest, []).append(
            f"no '{split}' scan with a lesion mask to score on"
        )
    if problems:
        raise InputError(
            "; ".join(
                f"{path}: --downstream needs the columns mask, healthy_image and split: "
                + "; ".join(p)
                for path, p in problems.items()
            )
        )
    return DownstreamData(manifest, train_manifest, split, train, recipients, donors, test)


def to_model_space(image: Volume, mask: Volume, space: ModelSpace) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) of a native scan in model space with its own geometry (as ``usbrain
    prepare`` brings it): float32 [0, 1] and uint8 {0, 1}, both ``space.size``."""
    prepared = preprocess(image, space, mask)
    return prepared.image, prepared.mask


def _same_grid(a: Volume, b: Volume) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=GRID_ATOL_MM)


def transfer_mask(donor: ManifestScan, recipient: Volume, space: ModelSpace) -> np.ndarray:
    """``donor``'s lesion mask on ``recipient``'s grid, cut to its brain: uint8 {0, 1}.

    As is when both scans share a grid, else through model space (donor → model grid centred on
    its brain → recipient's grid).
    """
    if _same_grid(donor.mask, recipient):
        mask = donor.mask.data > 0
    else:
        model = preprocess(donor.image, space, donor.mask).mask
        native = to_native(model, geometry_for(recipient, space), VolumeKind.MASK)
        mask = native > 0
    return (mask & brain_mask(recipient.data)).astype(np.uint8)


@dataclass
class SyntheticPairs:
    """Model-space pairs of one synthetic kind, and which donor mask went where."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    subjects: list[str]


def synthesise(
    pipe: Pipeline, data: DownstreamData, seed: int = 0
) -> tuple[dict[str, SyntheticPairs], list[dict], list[str]]:
    """USB and copy-paste pairs, one of each per recipient, with the same mask for both.

    Returns the pairs by kind (``"usb"``, ``"copy-paste"``), the insertions made
    (recipient, donor, lesion mL on the recipient's grid) and the recipients skipped.
    """
    space = pipe.config.space
    sampling = pipe.config.sampling
    rng = np.random.default_rng(seed)
    pairs = {kind: SyntheticPairs([], [], []) for kind in ("usb", "copy-paste")}
    inserted, skipped = [], []
    for i, recipient in enumerate(data.recipients):
        healthy = recipient.healthy
        start = next((k for k, d in enumerate(data.donors) if d.subject > recipient.subject), 0)
        order = data.donors[start:] + data.donors[:start]
        for donor in (d for d in order if d.subject != recipient.subject):
            mask = transfer_mask(donor, healthy, space)
            if not mask.any():
                continue
            mask_volume = Volume(mask, healthy.affine, donor.mask.path, healthy.header)
            try:
                with torch.inference_mode():
                    scan = Scan.load(healthy, space, mask_volume)
                    usb = lesion(pipe, scan, sampling, seed + i).image.data
            except InputError:
                continue  # cut by the model grid or vanishing at its resolution
            pasted = paste_lesion_intensities(
                healthy.data, mask, donor.image.data, donor.mask.data, rng
            )
            name = f"{recipient.subject}+{donor.subject}"
            for kind, out in (("usb", usb), ("copy-paste", pasted)):
                image_m, mask_m = to_model_space(
                    Volume(out, healthy.affine), Volume(mask, healthy.affine), space
                )
                pairs[kind].images.append(image_m)
                pairs[kind].masks.append(mask_m)
                pairs[kind].subjects.append(name)
            volume = lesion_ml(mask, healthy.spacing)
            inserted.append(
                {"recipient": recipient.subject, "donor": donor.subject, "lesion_ml": volume}
            )
            break
        else:
            skipped.append(recipient.subject)
    return pairs, inserted, skipped


def run_downstream(
    pipe: Pipeline,
    data: DownstreamData,
    config: SegmenterConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Train the three segmenters of :data:`SETS` and score each on ``data.test``.

    ``config``: the segmenters' architecture and training (default: the segmenter's defaults);
    its seed is replaced by ``seed`` so all three start from the same weights and draw the same
    flips. Returns ``results["downstream"]``: the config, the insertions, and per set the number
    of pairs (real and synthetic), the test Dice per scan, its mean and median, the final loss
    and the training seconds.
    """
    config = replace(config or SegmenterConfig(), seed=seed)
    space = pipe.config.space
    real_images, real_masks, real_subjects = [], [], []
    for scan in data.train:
        image_m, mask_m = to_model_space(scan.image, scan.mask, space)
        real_images.append(image_m)
        real_masks.append(mask_m)
        real_subjects.append(scan.subject)
    test = []
    for scan in data.test:
        image_m, mask_m = to_model_space(scan.image, scan.mask, space)
        if mask_m.any():  # a lesion that vanishes at the model's resolution is not scored
            test.append((scan.subject, image_m, mask_m))
    if not test:
        raise InputError(
            f"{data.manifest}: every '{data.split}' lesion vanishes at the model's resolution "
            f"({space.spacing:g} mm); --downstream has nothing to score on"
        )
    synthetic, inserted, skipped = synthesise(pipe, data, seed)
    sets = {}
    for name in SETS:
        extra = synthetic.get(name.removeprefix("real + "), SyntheticPairs([], [], []))
        pairs = PairDataset(
            real_images + extra.images,
            real_masks + extra.masks,
            space,
            real_subjects + extra.subjects,
        )
        segmenter = fit_segmenter(pairs, config, progress, device)
        cases = [
            {"subject": subject, "dice": lesion_dice(mask_m, segment(segmenter, image_m))}
            for subject, image_m, mask_m in test
        ]
        dice = [c["dice"] for c in cases]
        sets[name] = {
            "pairs": len(pairs),
            "real": len(real_images),
            "synthetic": len(extra.images),
            "dice_mean": float(np.mean(dice)),
            "dice_median": nan_median(dice),
            "cases": cases,
            "final_loss": segmenter.meta["final_loss"],
            "seconds": segmenter.meta["train_seconds"],
        }
    return {
        "config": asdict(config),
        "space": asdict(space),
        "train_data": str(data.train_manifest.resolve()),
        "train_split": TRAIN_SPLIT,
        "test_split": data.split,
        "test_scans": [subject for subject, _, _ in test],
        "inserted": inserted,
        "skipped": skipped,
        "sets": sets,
    }

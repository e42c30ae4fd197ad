"""The downstream-utility pieces: reading what it needs, moving masks between scans, and the
synthetic pairs (micro pipeline, random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import micro_config
from usbrain.data.cohort import write_cohort
from usbrain.data.nifti import Volume
from usbrain.errors import InputError
from usbrain.evaluate.downstream import (
    TRAIN_SPLIT,
    ManifestScan,
    read_downstream,
    synthesise,
    transfer_mask,
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("down") / "cohort", 10, size=32, progress=False)


def test_read_downstream_finds_train_donors_recipients_and_held_out_lesions(cohort):
    data = read_downstream(cohort, "test")
    assert data.train and all(s.mask is not None for s in data.train)
    assert {s.subject for s in data.donors} <= {s.subject for s in data.train}
    assert all(s.has_lesion for s in [*data.donors, *data.test])
    assert all(s.healthy is not None for s in data.recipients)
    assert not {s.subject for s in data.test} & {s.subject for s in data.train}


def test_read_downstream_says_what_is_missing(cohort, tmp_path):
    with pytest.raises(InputError, match="held-out split, not on 'train'"):
        read_downstream(cohort, TRAIN_SPLIT)
    lines = cohort.read_text().splitlines()
    root = cohort.parent
    # Absolute paths, no healthy images and no test split: two problems, one message.
    header = "subject,image,mask,split"
    rows = []
    for line in lines[1:]:
        subject, image, mask, _, split, *_ = line.split(",")
        split = "val" if split == "test" else split
        rows.append(f"{subject},{root / image},{root / mask},{split}")
    bare = tmp_path / "manifest.csv"
    bare.write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(InputError) as info:
        read_downstream(bare, "test")
    message = str(info.value)
    assert str(bare) in message and "healthy_image" in message and "no 'test' scan" in message


def test_read_downstream_trains_on_another_manifest_and_scores_on_the_held_out_one(
    cohort, tmp_path
):
    held_out = write_cohort(tmp_path / "held", 6, size=32, progress=False, start=10, held_out=True)
    with pytest.raises(InputError, match=f"{held_out}.*no 'train' scan"):
        read_downstream(held_out, "test")  # a held-out cohort has nothing to train on
    data = read_downstream(held_out, "test", train_manifest=cohort)
    assert data.train_manifest == cohort and data.manifest == held_out
    assert {s.subject for s in data.train} == {s.subject for s in read_downstream(cohort).train}
    tested = {r.split(",")[0] for r in held_out.read_text().splitlines()[1:] if ",test," in r}
    assert data.test and {s.subject for s in data.test} <= tested


def test_transfer_mask_as_is_on_one_grid_and_through_model_space_across_grids():
    space = micro_config().space
    shape = (32, 32, 32)
    ball = np.indices(shape) - 16
    radius = np.sqrt((ball**2).sum(0))
    brain = np.where(radius < 12, 1000.0 - 20.0 * radius, 0.0).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    mask[14:19, 14:19, 14:19] = 1
    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    donor = ManifestScan("d", Volume(brain, affine), Volume(mask, affine), None)
    same = transfer_mask(donor, Volume(brain, affine), space)
    assert np.array_equal(same, mask)
    # Another grid (shifted 10 mm), whose brain sits 5 voxels further along x: the lesion keeps
    # its place relative to the brain.
    other = affine.copy()
    other[0, 3] = 10.0
    moved = transfer_mask(donor, Volume(np.roll(brain, 5, axis=0), other), space)
    assert moved.shape == shape and moved.any()
    centre = np.argwhere(moved).mean(axis=0)
    assert abs(centre[0] - 21) <= 1.5 and np.all(np.abs(centre[1:] - 16) <= 1.5), centre


def test_usb_and_copy_paste_pairs_use_the_same_masks(cohort):
    from usbrain.pipeline import Pipeline

    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config())
    data = read_downstream(cohort, "test")
    pairs, inserted, skipped = synthesise(pipe, data, seed=0)
    assert len(inserted) + len(skipped) == len(data.recipients) and inserted
    usb, pasted = pairs["usb"], pairs["copy-paste"]
    assert len(usb.images) == len(pasted.images) == len(inserted)
    assert usb.subjects == pasted.subjects
    for a, b, image in zip(usb.masks, pasted.masks, usb.images, strict=True):
        assert np.array_equal(a, b) and a.any() and a.shape == tuple(pipe.config.space.size)
        assert image.dtype == np.float32 and image.min() >= 0.0 and image.max() <= 1.0

"""Round trips insert → heal and heal → insert (usbrain.evaluate.round_trips)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import lesion_mask, micro_config, phantom_brain
from tests.tasks.conftest import LESION, TASK_OVERRIDES
from usbrain.data.nifti import Volume
from usbrain.data.scan import Scan
from usbrain.evaluate import round_trips
from usbrain.evaluate.regions import region_mae, region_mean
from usbrain.evaluate.round_trips import round_trip_scores
from usbrain.pipeline import Pipeline
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


@pytest.fixture(scope="module")
def triple():
    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config(*TASK_OVERRIDES, "sampling.steps=4"))
    healthy = phantom_brain()
    mask = lesion_mask(**LESION)
    sick = healthy.copy()
    sick[mask > 0] = 300.0
    return pipe, Volume(healthy, AFFINE), Volume(sick, AFFINE), Volume(mask, AFFINE)


def test_scores_are_the_two_round_trips_of_the_pipelines_own_edits(triple):
    pipe, healthy, sick, mask = triple
    seen = []
    scores = round_trip_scores(
        pipe, healthy, sick, mask, seed=3, dice=lambda a: seen.append(a) or 0.5
    )

    s, region, space = pipe.config.sampling, mask.data > 0, pipe.config.space
    inserted = lesion(pipe, Scan.load(healthy, space, mask), s, 3).image
    back = heal(pipe, Scan.load(inserted, space, mask), s, 3).image.data
    healed = heal(pipe, Scan.load(sick, space, mask), s, 3).image
    again = lesion(pipe, Scan.load(healed, space, mask), s, 3).image.data
    assert scores["insert_heal_mae"] == pytest.approx(region_mae(back, healthy.data, region))
    assert scores["insert_heal_mae_ratio"] == pytest.approx(
        region_mae(back, healthy.data, region) / region_mae(inserted.data, healthy.data, region)
    )
    assert scores["heal_insert_intensity_ratio"] == pytest.approx(
        region_mean(again, region) / region_mean(sick.data, region)
    )
    assert np.isfinite(scores["insert_heal_psnr"])
    assert scores["heal_insert_seg_dice"] == 0.5 and np.array_equal(seen[0], again)


def test_first_edits_made_elsewhere_give_the_same_scores(triple):
    pipe, healthy, sick, mask = triple
    s, space = pipe.config.sampling, pipe.config.space
    inserted = lesion(pipe, Scan.load(healthy, space, mask), s, 3).image.data
    healed = heal(pipe, Scan.load(sick, space, mask), s, 3).image.data
    given = round_trip_scores(pipe, healthy, sick, mask, seed=3, first=(inserted, healed))
    assert given == pytest.approx(round_trip_scores(pipe, healthy, sick, mask, seed=3))
    # ... and they are what is scored: an insertion that changed nothing leaves no share.
    unchanged = round_trip_scores(pipe, healthy, sick, mask, 3, first=(healthy.data, healed))
    assert np.isnan(unchanged["insert_heal_mae_ratio"])


def test_without_a_segmenter_there_is_no_dice(triple):
    assert "heal_insert_seg_dice" not in round_trip_scores(*triple, seed=0)


def test_a_void_inserted_at_the_brain_edge_is_still_healed(triple, monkeypatch):
    """The heal after an insertion reads the inserted scan with the healthy scan's brain: a
    black lesion at the brain's edge is no longer brain by intensity, and found afresh, the
    mask would be refused as lying outside it."""
    pipe, healthy, _, _ = triple
    edge = lesion_mask(centre=(6, 22, 18), radius=6) * (healthy.data > 0)
    mask = Volume(edge.astype(np.uint8), AFFINE)
    sick = Volume(np.where(edge > 0, 300.0, healthy.data).astype(np.float32), AFFINE)

    def void(_pipe, scan, *_args):
        data = np.where(scan.mask.data > 0, 0.0, scan.native.data).astype(np.float32)
        return SimpleNamespace(image=Volume(data, AFFINE))

    monkeypatch.setattr(round_trips, "lesion", void)
    scores = round_trip_scores(pipe, healthy, sick, mask, seed=0)
    assert np.isfinite(scores["insert_heal_mae"]) and scores["heal_insert_intensity_ratio"] == 0

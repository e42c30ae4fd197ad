"""Behaviour of the shipped ``base`` model (models/base) on subjects it never saw.

The held-out subjects are built-in cohort subjects numbered far past the training cohort's
(``make weights`` trains on subjects 0–199), so they are new anatomy, lesions and scanners.
Sampling only: each test is one edit or one sample at 96³.
"""

from __future__ import annotations

import numpy as np
import pytest

from usbrain.data.cohort import VARIATIONS, load_template, make_subject
from usbrain.data.nifti import Volume
from usbrain.data.scan import Scan
from usbrain.evaluate.tasks import heal_scores, lesion_scores
from usbrain.pipeline import SHIPPED_MODELS, Pipeline
from usbrain.tasks.generate import generate
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion

BASE = SHIPPED_MODELS / "base"
HELD_OUT = 10_000  # a territorial stroke (subject numbers ≡ 0 mod 5 are strokes)
pytestmark = pytest.mark.skipif(
    not (BASE / "meta.json").is_file(), reason="models/base is not trained yet (make weights)"
)


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_pretrained("base")


@pytest.fixture(scope="module")
def subject():
    s = make_subject(load_template(), HELD_OUT, 100, seed=0, variation=VARIATIONS["rich"])
    assert s.kind == "stroke" and s.lesion_ml > 1.0
    return s


def _volume(data: np.ndarray, affine: np.ndarray) -> Volume:
    return Volume(np.asarray(data), affine)


def test_heal_lowers_the_in_lesion_error_of_an_unseen_subject(pipe, subject):
    mask = _volume(subject.mask, subject.affine)
    scan = Scan.load(_volume(subject.pathological, subject.affine), pipe.config.space, mask)
    healed = heal(pipe, scan, pipe.config.sampling)
    scores = heal_scores(healed.image.data, subject.pathological, subject.healthy, subject.mask)
    assert scores["mae_ratio"] < 0.8, scores
    assert scores["psnr_outside"] > 30.0, scores


def test_an_inserted_lesion_appears_where_asked(pipe, subject):
    mask = _volume(subject.mask, subject.affine)
    scan = Scan.load(_volume(subject.healthy, subject.affine), pipe.config.space, mask)
    inserted = lesion(pipe, scan, pipe.config.sampling)
    scores = lesion_scores(inserted.image.data, subject.healthy, subject.mask)
    assert scores["intensity_ratio"] < 0.9, scores  # darker inside the mask, as T1 lesions are
    # Measured 29.0 dB on this subject with base v1 (validation median 33.8 dB): an edit that
    # spilled over the scan would fall far below.
    assert scores["psnr_outside"] > 27.0, scores


@pytest.mark.xfail(
    strict=True,
    reason="base v1 draws a void: lesion / white matter 0.13 where this subject's real stroke "
    "is 0.40 (the issue asks for within 0.15)",
)
def test_an_inserted_stroke_is_as_dark_as_a_real_one_not_a_void(pipe, subject):
    mask = _volume(subject.mask, subject.affine)
    scan = Scan.load(_volume(subject.healthy, subject.affine), pipe.config.space, mask)
    inserted = lesion(pipe, scan, pipe.config.sampling)
    made = lesion_scores(inserted.image.data, subject.healthy, subject.mask)["intensity_ratio"]
    real = lesion_scores(subject.pathological, subject.healthy, subject.mask)["intensity_ratio"]
    assert abs(made - real) <= 0.15, (made, real)


@pytest.mark.xfail(
    strict=True,
    reason="base v1's denoisers (1,200 steps on 2 CPU cores) generate blurred brains whose "
    "lesions can lie outside them: 1.0 and 0.50 of the two lesions inside (median 0.75)",
)
def test_a_generated_pairs_lesion_lies_in_its_brain(pipe):
    with_lesion = [r for r in generate(pipe, 3, pipe.config.sampling, seed=0)]
    fractions = [r.info["lesion_in_brain"] for r in with_lesion if r.info["lesion_voxels"] > 0]
    assert fractions, "none of 3 generated pairs carries a lesion"
    assert np.median(fractions) >= 0.9, fractions

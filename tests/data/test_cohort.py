from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from usbrain.data.cohort import load_template, make_subject, write_cohort
from usbrain.data.pseudo import white_matter_mean
from usbrain.errors import ConfigError, OutputExistsError

RANGES_ML = {"stroke": (1.0, 150.0), "wmh": (0.5, 30.0)}


@pytest.fixture(scope="module")
def subjects():
    template = load_template()
    return [make_subject(template, i, 48, seed=0) for i in range(10)]


def test_lesion_volumes_kinds_and_healthy_subjects(subjects):
    kinds = [s.kind for s in subjects]
    assert {"stroke", "wmh", "healthy"} <= set(kinds)
    for s in subjects:
        if s.kind == "healthy":
            assert s.mask.sum() == 0 and np.array_equal(s.healthy, s.pathological)
            continue
        low, high = RANGES_ML[s.kind]
        assert low <= s.lesion_ml <= high, (s.kind, s.subtype, s.lesion_ml)


def test_lesions_lie_inside_the_brain(subjects):
    for s in subjects:
        assert not (s.mask.astype(bool) & ~s.brain.astype(bool)).any()
        assert not s.healthy[s.brain == 0].any()  # skull-stripped: zero background


def test_pathological_equals_healthy_beyond_two_voxels(subjects):
    for s in subjects:
        outside = ~ndimage.binary_dilation(s.mask > 0, iterations=2)
        assert np.array_equal(s.pathological[outside], s.healthy[outside])
        if s.mask.any():
            assert not np.array_equal(s.pathological, s.healthy)


def test_lesions_are_darker_than_white_matter(subjects):
    for s in subjects:
        if not s.mask.any():
            continue
        wm = s.healthy[(s.wm > 0.9) & (s.brain > 0)].mean()
        lesion = s.pathological[s.mask > 0].mean()
        assert lesion < 0.8 * wm, (s.kind, lesion / wm)
        assert white_matter_mean(s.healthy, s.brain > 0) > 0.9 * wm  # the robust rule agrees


def test_subject_does_not_depend_on_cohort_size():
    template = load_template()
    a = make_subject(template, 3, 32, seed=5)
    b = make_subject(template, 3, 32, seed=5)
    c = make_subject(template, 3, 32, seed=6)
    assert np.array_equal(a.pathological, b.pathological)
    assert not np.array_equal(a.healthy, c.healthy)


@pytest.mark.slow
def test_same_seed_gives_identical_files(tmp_path):
    a = write_cohort(tmp_path / "a", subjects=4, size=32, seed=1, progress=False)
    b = write_cohort(tmp_path / "b", subjects=4, size=32, seed=1, progress=False)
    files_a = sorted(p.name for p in a.parent.iterdir())
    assert files_a == sorted(p.name for p in b.parent.iterdir())
    assert len(files_a) == 4 * 4 + 1
    for name in files_a:
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name
    rows = list(csv.DictReader(a.open()))
    assert [r["subject"] for r in rows] == ["sub-000", "sub-001", "sub-002", "sub-003"]
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    img = nib.load(a.parent / rows[0]["image"])
    assert img.get_data_dtype() == np.float32 and img.shape == (32, 32, 32)
    assert nib.load(a.parent / rows[0]["mask"]).get_data_dtype() == np.uint8


def test_bad_arguments_and_existing_output(tmp_path):
    with pytest.raises(ConfigError, match="--subjects"):
        write_cohort(tmp_path / "x", subjects=0)
    with pytest.raises(ConfigError, match="--size"):
        write_cohort(tmp_path / "x", subjects=1, size=8)
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputExistsError):
        write_cohort(tmp_path / "taken", subjects=1, size=32, progress=False)
    assert list((tmp_path / "taken").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]

from __future__ import annotations

import csv
import gzip

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from usbrain.data.cohort import cohort_affine, load_template, make_subject, write_cohort
from usbrain.data.pseudo import white_matter_mean
from usbrain.errors import ConfigError, OutputExistsError

RANGES_ML = {"stroke": (1.0, 150.0), "wmh": (0.5, 30.0)}
SIZE = 48
MANIFEST_HEADER = "subject,image,mask,healthy_image,split,kind,lesion_ml,brain,subtype,atrophy"


@pytest.fixture(scope="module")
def subjects():
    template = load_template()
    return [make_subject(template, i, SIZE, seed=0) for i in range(6)]


def test_template_is_the_mni152_brain():
    t = load_template()
    assert t.t1.shape == t.gm.shape == t.wm.shape == t.brain.shape == (197, 233, 189)
    assert all(m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1 for m in (t.t1, t.gm, t.wm))
    np.testing.assert_allclose(t.centre, (0, -22, 10), atol=3)
    assert load_template() is t  # loaded once


def test_grid_shapes_and_types(subjects):
    expected = cohort_affine(SIZE, load_template().centre)
    assert np.allclose(np.diag(expected)[:3], 200 / SIZE)
    for s in subjects:
        assert s.healthy.shape == s.pathological.shape == s.mask.shape == (SIZE,) * 3
        assert s.healthy.dtype == s.pathological.dtype == np.float32
        assert s.mask.dtype == s.brain.dtype == np.uint8
        np.testing.assert_array_equal(s.affine, expected)
        assert not s.healthy[s.brain == 0].any()  # skull-stripped: the background is exactly 0
        assert 500 < np.percentile(s.healthy[s.brain > 0], 99) < 1200  # roughly [0, 1000]
        assert 1000 < s.brain.sum() * (200 / SIZE) ** 3 / 1000 < 2500  # a brain's mL


def test_lesion_volumes_kinds_and_healthy_subjects(subjects):
    kinds = [s.kind for s in subjects]
    assert {"stroke", "wmh", "healthy"} <= set(kinds)
    for s in subjects:
        if s.kind == "healthy":
            assert s.mask.sum() == 0 and s.lesion_ml == 0.0
            assert np.array_equal(s.healthy, s.pathological)
            continue
        low, high = RANGES_ML[s.kind]
        assert low <= s.lesion_ml <= high, (s.kind, s.subtype, s.lesion_ml)
        assert s.lesion_ml == pytest.approx(s.mask.sum() * (200 / SIZE) ** 3 / 1000)


def test_lesions_lie_inside_the_brain(subjects):
    for s in subjects:
        assert not (s.mask.astype(bool) & ~s.brain.astype(bool)).any()


def test_pathological_equals_healthy_beyond_two_voxels(subjects):
    for s in subjects:
        outside = ~ndimage.binary_dilation(s.mask > 0, iterations=2)
        assert np.array_equal(s.pathological[outside], s.healthy[outside])
        if s.mask.any():
            assert not np.array_equal(s.pathological[s.mask > 0], s.healthy[s.mask > 0])


def test_lesions_are_darker_than_white_matter(subjects):
    for s in subjects:
        if not s.mask.any():
            continue
        wm = s.healthy[(s.wm > 0.9) & (s.brain > 0)].mean()
        lesion = s.pathological[s.mask > 0].mean()
        assert lesion < 0.8 * wm, (s.kind, lesion / wm)
        assert white_matter_mean(s.healthy, s.brain) == pytest.approx(wm, rel=0.1)


def test_wmh_lies_in_white_matter(subjects):
    for s in subjects:
        if s.kind == "wmh":
            assert (s.wm[s.mask > 0] > 0.5).all()


def test_subject_depends_only_on_seed_and_index():
    template = load_template()
    a = make_subject(template, 1, 24, seed=5)
    assert np.array_equal(a.pathological, make_subject(template, 1, 24, seed=5).pathological)
    assert not np.array_equal(a.healthy, make_subject(template, 1, 24, seed=6).healthy)
    assert not np.array_equal(a.healthy, make_subject(template, 2, 24, seed=5).healthy)


def _gzip_mtime(data: bytes) -> int:
    return int.from_bytes(data[4:8], "little")  # RFC 1952: MTIME, bytes 4–7


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = write_cohort(tmp_path / "a", subjects=3, size=24, seed=1, progress=False)
    b = write_cohort(tmp_path / "b", subjects=3, size=24, seed=1, progress=False)
    names = sorted(p.name for p in a.parent.iterdir())
    assert names == sorted(p.name for p in b.parent.iterdir())
    assert len(names) == 3 * 4 + 1
    for name in names:
        raw_a, raw_b = (a.parent / name).read_bytes(), (b.parent / name).read_bytes()
        if name.endswith(".gz"):
            # nibabel writes gzip with MTIME 0 and no file name: the bytes do not carry the time
            assert _gzip_mtime(raw_a) == 0 == _gzip_mtime(raw_b), name
            assert gzip.decompress(raw_a) == gzip.decompress(raw_b), name
        assert raw_a == raw_b, name
    # subject k does not depend on how many subjects the cohort has
    c = write_cohort(tmp_path / "c", subjects=2, size=24, seed=1, progress=False)
    for name in ("sub-001_pathological.nii.gz", "sub-001_mask.nii.gz"):
        assert (c.parent / name).read_bytes() == (a.parent / name).read_bytes()


def test_files_and_manifest(tmp_path):
    manifest = write_cohort(tmp_path / "c", subjects=5, size=24, seed=2, progress=False)
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert ",".join(reader.fieldnames) == MANIFEST_HEADER
    assert [r["subject"] for r in rows] == [f"sub-{i:03d}" for i in range(5)]
    assert [r["kind"] for r in rows] == ["stroke", "wmh", "stroke", "wmh", "healthy"]
    assert sorted(r["split"] for r in rows).count("train") == 3
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    for r in rows:
        assert r["image"] == f"{r['subject']}_pathological.nii.gz"
        assert r["healthy_image"] == f"{r['subject']}_healthy.nii.gz"
        assert r["mask"] == f"{r['subject']}_mask.nii.gz"
        assert r["brain"] == f"{r['subject']}_brain.nii.gz"
        image, mask = nib.load(manifest.parent / r["image"]), nib.load(manifest.parent / r["mask"])
        assert image.get_data_dtype() == np.float32 and image.shape == (24, 24, 24)
        assert mask.get_data_dtype() == np.uint8
        assert nib.load(manifest.parent / r["brain"]).get_data_dtype() == np.uint8
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        ml = np.asarray(mask.dataobj).sum() * (200 / 24) ** 3 / 1000
        assert float(r["lesion_ml"]) == pytest.approx(ml, abs=1e-3)


def test_bad_arguments_and_existing_output(tmp_path):
    with pytest.raises(ConfigError, match="--subjects"):
        write_cohort(tmp_path / "x", subjects=0)
    with pytest.raises(ConfigError, match="--size"):
        write_cohort(tmp_path / "x", subjects=1, size=8)
    with pytest.raises(ConfigError, match="--size"):
        write_cohort(tmp_path / "x", subjects=1, size=300)
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_cohort(tmp_path / "taken", subjects=1, size=16, progress=False)
    assert list((tmp_path / "taken").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no partial folder either
    manifest = write_cohort(tmp_path / "taken", subjects=1, size=16, overwrite=True, progress=False)
    assert manifest.exists()


def test_a_held_out_extension_shares_no_subject_and_is_all_val_or_test(tmp_path):
    base = write_cohort(tmp_path / "train", subjects=3, size=16, seed=4, progress=False)
    more = write_cohort(
        tmp_path / "eval", subjects=8, size=16, seed=4, progress=False, start=3, held_out=True
    )
    with base.open(newline="") as f, more.open(newline="") as g:
        first, second = list(csv.DictReader(f)), list(csv.DictReader(g))
    assert [r["subject"] for r in second] == [f"sub-{i:03d}" for i in range(3, 11)]
    assert not {r["subject"] for r in first} & {r["subject"] for r in second}
    assert sorted(r["split"] for r in second) == ["test"] * 4 + ["val"] * 4
    # subject 3 is the same scan whichever cohort holds it
    again = write_cohort(tmp_path / "again", subjects=4, size=16, seed=4, progress=False)
    a = nib.load(tmp_path / "eval" / "sub-003_healthy.nii.gz").get_fdata()
    b = nib.load(again.parent / "sub-003_healthy.nii.gz").get_fdata()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="--start"):
        write_cohort(tmp_path / "x", subjects=1, start=-1)

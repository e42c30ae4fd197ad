from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from tests.conftest import lesion_mask, phantom_brain, write
from usbrain.data.datasets import Record, Split
from usbrain.data.pseudo import (
    T1_LESION_RATIO,
    LesionKind,
    LesionSource,
    embed_lesion,
    flood_region,
    fluid_lesion_shape,
    gaussian_blobs,
    grow_region,
    lesion_to_wm_ratio,
    sample_lesion_ratio,
    split_before_embedding,
    top_voxels,
    white_matter_mean,
    write_pseudo,
)
from usbrain.errors import InputError, OutputExistsError

SHAPE = (32, 32, 32)


def slab_prior() -> np.ndarray:
    """A box of tissue (1.0) with a weaker layer (0.3) and nothing elsewhere."""
    prior = np.zeros(SHAPE, np.float32)
    prior[4:28, 4:28, 4:20] = 1.0
    prior[4:28, 4:28, 20:24] = 0.3
    return prior


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- lesion shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [1, 40, 300, 1500])
def test_fluid_shape_hits_the_target_inside_the_prior_and_is_connected(target):
    seed = gaussian_blobs(SHAPE, np.array([[16, 16, 12]]), 1.0)
    mask = fluid_lesion_shape(seed, slab_prior(), target, rng(0), prior_floor=0.5)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert int(mask.sum()) == target  # exact volume
    assert (slab_prior()[mask > 0] > 0.5).all()  # never below the prior floor
    assert ndimage.label(mask)[1] == 1  # one seed, one connected lesion


def test_fluid_shape_is_deterministic_and_randomised_by_the_generator():
    seed = gaussian_blobs(SHAPE, np.array([[16, 16, 12]]), 1.0)
    a = fluid_lesion_shape(seed, slab_prior(), 400, rng(3))
    assert np.array_equal(a, fluid_lesion_shape(seed, slab_prior(), 400, rng(3)))
    assert not np.array_equal(a, fluid_lesion_shape(seed, slab_prior(), 400, rng(4)))
    # the flow makes it irregular: more surface than a ball of the same volume would have
    surface = int((ndimage.binary_dilation(a) & (a == 0)).sum())
    assert surface > 1.1 * 4.84 * 400 ** (2 / 3)


def test_fluid_shape_keeps_what_it_can_when_the_prior_is_small():
    prior = np.zeros(SHAPE, np.float32)
    prior[10:14, 10:14, 10:14] = 1.0  # 64 voxels
    seed = gaussian_blobs(SHAPE, np.array([[12, 12, 12]]), 1.0)
    assert int(fluid_lesion_shape(seed, prior, 500, rng()).sum()) == 64
    assert not fluid_lesion_shape(np.zeros(SHAPE), prior, 10, rng()).any()


def test_unconnected_shape_is_a_threshold_with_the_exact_count():
    seed = gaussian_blobs(SHAPE, np.array([[10, 10, 12], [21, 21, 12]]), 1.0)
    mask = fluid_lesion_shape(seed, slab_prior(), 60, rng(), connected=False)
    assert int(mask.sum()) == 60 and (slab_prior()[mask > 0] > 0.1).all()
    field = np.arange(27, dtype=float).reshape(3, 3, 3)
    top = top_voxels(field, field != 26, 3)  # the brightest eligible: 25, 24, 23
    assert sorted(field[top].tolist()) == [23.0, 24.0, 25.0]


def test_grow_region_adds_exactly_n_connected_voxels_along_the_field():
    field = np.zeros(SHAPE)
    field[16, :, 16] = np.arange(32)  # a ridge rising towards j = 31
    eligible = np.ones(SHAPE, bool)
    region = flood_region(field, eligible, (16, 10, 16), 8)
    assert region.sum() == 8 and region[16, 10:18, 16].all()  # climbs the ridge, nothing else
    grown = grow_region(field, eligible, region, 5)
    assert grown.sum() == 13 and (grown >= region).all()
    assert ndimage.label(grown)[1] == 1
    assert not flood_region(field, eligible & (field > 0), (0, 0, 0), 5).any()  # start excluded


# --- embedding -----------------------------------------------------------------------------------


def test_embed_changes_nothing_beyond_one_voxel_and_darkens_the_lesion():
    healthy = phantom_brain()
    mask = lesion_mask()
    sick = embed_lesion(healthy, mask, 200.0, rng(0))
    assert sick.dtype == healthy.dtype and sick.shape == healthy.shape
    for iterations in (1, 2):
        outside = ~ndimage.binary_dilation(mask > 0, iterations=iterations)
        assert np.array_equal(sick[outside], healthy[outside])  # bit-identical
    inside = sick[mask > 0]
    assert (np.abs(inside - 200.0) <= 0.05 * 200.0 + 1e-3).all()  # texture within ±5%
    assert inside.std() > 0  # but a texture there is
    ring = ndimage.binary_dilation(mask > 0) & (mask == 0)
    assert (sick[ring] < healthy[ring]).all() and (sick[ring] > 200.0 * 0.95).all()
    assert np.array_equal(sick, embed_lesion(healthy, mask, 200.0, rng(0)))


def test_embed_with_an_empty_mask_returns_an_identical_copy():
    healthy = phantom_brain()
    out = embed_lesion(healthy, np.zeros(healthy.shape, np.uint8), 1.0, rng())
    assert np.array_equal(out, healthy) and out is not healthy


def test_embed_at_the_volume_edge():
    healthy = phantom_brain()
    mask = np.zeros(healthy.shape, np.uint8)
    mask[0:3, 0:3, 0:3] = 1
    sick = embed_lesion(healthy, mask, 50.0, rng())
    outside = ~ndimage.binary_dilation(mask > 0)
    assert np.array_equal(sick[outside], healthy[outside]) and (sick[mask > 0] < 60).all()


# --- intensities ---------------------------------------------------------------------------------


def test_white_matter_mean_and_ratio_on_a_phantom():
    img = np.zeros((10, 10, 10), np.float32)
    brain = np.zeros(img.shape, bool)
    brain[1:9, 1:9, 1:9] = True  # 512 voxels
    img[brain] = 600.0  # grey matter
    img[3:9, 1:9, 1:9] = 900.0  # white matter: 384 of 512 voxels, more than the top 30%
    img[1, 1, 1] = 5000.0  # one bright outlier does not move the median
    assert white_matter_mean(img, brain) == 900.0
    mask = np.zeros(img.shape, np.uint8)
    mask[5:7, 3:5, 3:5] = 1
    img[mask > 0] = 450.0
    assert white_matter_mean(img, brain, exclude=mask) == 900.0
    assert lesion_to_wm_ratio(img, mask, brain) == pytest.approx(0.5)
    with pytest.raises(InputError):
        white_matter_mean(img, np.zeros(img.shape, bool))
    with pytest.raises(InputError, match="empty"):
        lesion_to_wm_ratio(img, np.zeros(img.shape, np.uint8), brain)


def test_lesion_ratio_model():
    assert T1_LESION_RATIO[LesionKind.STROKE] == (0.25, 0.55)
    assert T1_LESION_RATIO[LesionKind.WMH] == (0.5, 0.7)
    g = rng()
    strokes = [sample_lesion_ratio("stroke", g) for _ in range(200)]
    wmh = [sample_lesion_ratio(LesionKind.WMH, g) for _ in range(200)]
    assert min(strokes) >= 0.25 and max(strokes) <= 0.55
    assert min(wmh) >= 0.5 and max(wmh) <= 0.7
    assert max(strokes) - min(strokes) > 0.2  # spread over the range, not a constant


# --- write_pseudo --------------------------------------------------------------------------------

MNI = 4  # NIfTI xform code: aligned to a standard (MNI) space


@pytest.fixture
def pseudo_inputs(tmp_path):
    """Three healthy phantoms (2 mm grid, MNI header) and two lesions: p1 on a coarser 4 mm
    grid with its patient image (lesion-to-WM ratio 0.4), p2 on the healthy grid without one."""
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    for i in range(3):
        write(
            healthy / f"h{i}.nii.gz",
            phantom_brain(seed=i),
            descrip=b"healthy volunteer",
            sform_code=MNI,
            qform_code=MNI,
        )
    lesions = tmp_path / "lesions"
    lesions.mkdir()
    coarse = np.diag([4.0, 4.0, 4.0, 1.0])
    src = phantom_brain(shape=(20, 22, 18))
    m = lesion_mask(shape=(20, 22, 18), centre=(13, 11, 9), radius=2)
    src[m > 0] = 0.4 * white_matter_mean(src, src > 0, exclude=m > 0)
    write(lesions / "p1_t1.nii.gz", src, coarse)
    write(lesions / "p1_mask.nii.gz", m, coarse)
    write(lesions / "p2_mask.nii.gz", lesion_mask(centre=(18, 22, 18), radius=3))
    (lesions / "list.csv").write_text("image,mask\np1_t1.nii.gz,p1_mask.nii.gz\n,p2_mask.nii.gz\n")
    return healthy, lesions


def test_write_pseudo_end_to_end(tmp_path, pseudo_inputs):
    healthy, lesions = pseudo_inputs
    manifest = write_pseudo(healthy, lesions / "list.csv", tmp_path / "out", progress=False)
    assert manifest == tmp_path / "out" / "manifest.csv"
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    columns = "subject,image,mask,healthy_image,split,lesion_source,lesion_ml,lesion_to_wm"
    assert reader.fieldnames == columns.split(",")
    parts = ("healthy", "mask", "pathological")
    expected = ["manifest.csv"] + [f"h{i}_{p}.nii.gz" for i in range(3) for p in parts]
    assert sorted(p.name for p in manifest.parent.iterdir()) == sorted(expected)
    sources = [r["lesion_source"].split("/")[-1] for r in rows]
    assert set(sources) == {"p1_mask.nii.gz", "p2_mask.nii.gz"}  # cycling uses every lesion
    for r in rows:
        assert r["image"] == f"{r['subject']}_pathological.nii.gz"
        assert r["split"] == "train"  # two lesions cannot give val and test their own
        ref = nib.load(healthy / f"{r['subject']}.nii.gz")
        sick = nib.load(manifest.parent / r["image"])
        kept = nib.load(manifest.parent / r["healthy_image"])
        mask_img = nib.load(manifest.parent / r["mask"])
        for img in (sick, kept, mask_img):  # the healthy scan's grid and header travel along
            np.testing.assert_array_equal(img.affine, ref.affine)
            assert img.header["descrip"] == ref.header["descrip"]
            assert int(img.header["sform_code"]) == MNI == int(img.header["qform_code"])
        h, s = ref.get_fdata(), sick.get_fdata()
        mask = np.asarray(mask_img.dataobj)
        assert mask_img.get_data_dtype() == np.uint8 and mask.any()
        np.testing.assert_array_equal(kept.get_fdata(), h)
        assert (h[mask > 0] > 0).all()  # inside the healthy brain
        assert float(r["lesion_ml"]) == pytest.approx(mask.sum() * 8 / 1000, abs=1e-3)
        outside = ~ndimage.binary_dilation(mask > 0, iterations=2)
        np.testing.assert_array_equal(s[outside], h[outside])
        brain = h > 0
        measured = s[mask > 0].mean() / white_matter_mean(h, brain)
        if sources[rows.index(r)] == "p1_mask.nii.gz":  # the source patient's ratio is used
            assert float(r["lesion_to_wm"]) == pytest.approx(0.4, abs=0.02)
            assert measured == pytest.approx(0.4, abs=0.03)
        else:  # no image: the T1 stroke model
            assert 0.25 <= float(r["lesion_to_wm"]) <= 0.55
            assert measured == pytest.approx(float(r["lesion_to_wm"]), abs=0.03)


def test_write_pseudo_is_deterministic_and_reads_a_folder_of_masks(tmp_path, pseudo_inputs):
    healthy, lesions = pseudo_inputs
    folder = tmp_path / "masks"
    folder.mkdir()
    (folder / "a.nii.gz").write_bytes((lesions / "p2_mask.nii.gz").read_bytes())
    a = write_pseudo(healthy, folder, tmp_path / "a", seed=3, progress=False)
    b = write_pseudo(healthy, folder, tmp_path / "b", seed=3, progress=False)
    for path in a.parent.iterdir():
        if path.name != "manifest.csv":
            assert path.read_bytes() == (b.parent / path.name).read_bytes(), path.name
    assert a.read_text().replace(str(a.parent), "") == b.read_text().replace(str(b.parent), "")


def test_write_pseudo_reports_every_problem_and_writes_nothing(tmp_path, pseudo_inputs):
    healthy, lesions = pseudo_inputs
    write(lesions / "p2_mask.nii.gz", lesion_mask() * np.float32(0.5))  # not binary
    outside = np.zeros((40, 44, 36), np.uint8)
    outside[0:2, 0:2, 0:2] = 1  # in the corner: background of every healthy brain
    write(lesions / "p3_mask.nii.gz", outside)
    (lesions / "list.csv").write_text(
        "image,mask\n,p2_mask.nii.gz\n,gone.nii.gz\n,p3_mask.nii.gz\n"
    )
    with pytest.raises(InputError) as err:
        write_pseudo(healthy, lesions / "list.csv", tmp_path / "out", progress=False)
    message = str(err.value)
    assert "p2_mask.nii.gz: mask is not binary" in message
    assert "gone.nii.gz: file not found" in message
    assert "p3_mask.nii.gz: no lesion voxel falls inside the brain" in message
    assert message.startswith("3 problem(s)")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["healthy", "lesions"]


def test_write_pseudo_refuses_an_existing_output_first(tmp_path, pseudo_inputs):
    healthy, lesions = pseudo_inputs
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_pseudo(healthy, tmp_path / "missing.csv", tmp_path / "out", progress=False)
    manifest = write_pseudo(
        healthy, lesions / "list.csv", tmp_path / "out", overwrite=True, progress=False
    )
    assert len(list(csv.DictReader(manifest.open()))) == 3


def test_write_pseudo_bad_lesion_argument(tmp_path, pseudo_inputs):
    healthy, _ = pseudo_inputs
    with pytest.raises(InputError, match="not found"):
        write_pseudo(healthy, tmp_path / "nope", tmp_path / "out", progress=False)
    with pytest.raises(InputError, match="'mask' column"):
        (tmp_path / "bad.csv").write_text("image,lesion\na,b\n")
        write_pseudo(healthy, tmp_path / "bad.csv", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_no_lesion_source_is_embedded_in_two_splits():
    healthy = [Record(f"h{i:02d}", Path(f"h{i:02d}.nii.gz")) for i in range(40)]
    sources = [LesionSource(Path(f"lesion{i}.nii.gz")) for i in range(12)]
    records, assignment = split_before_embedding(healthy, sources, seed=0)
    splits_of: dict[Path, set] = {}
    for record, source in zip(records, assignment, strict=True):
        splits_of.setdefault(source.mask, set()).add(record.split)
    assert all(len(s) == 1 for s in splits_of.values()), splits_of
    assert {r.split for r in records} == set(Split)  # and every split has scans
    assert len(splits_of) == 12  # every lesion is used
    assert [r.subject for r in records] == [r.subject for r in healthy]
    again = split_before_embedding(list(reversed(healthy)), sources, seed=0)
    assert {r.subject: s for r, s in zip(*again, strict=True)} == {
        r.subject: s for r, s in zip(records, assignment, strict=True)
    }

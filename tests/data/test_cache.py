from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.conftest import lesion_mask, phantom_brain, write
from usbrain.config import ModelSpace
from usbrain.data.cache import PreparedDataset, prepare, read_space
from usbrain.data.datasets import read_manifest
from usbrain.data.geometry import Geometry
from usbrain.errors import InputError, OutputExistsError

SPACE = ModelSpace(size=(32, 32, 32), spacing=3.0)


def make_dataset(root, n=4, x=20):
    root.mkdir()
    lines = ["subject,image,mask,healthy_image"]
    for i in range(n):
        healthy = phantom_brain(seed=i)
        mask = lesion_mask(centre=(x + i, 22, 18))
        sick = healthy.copy()
        sick[mask > 0] = 300.0
        write(root / f"s{i}_t1.nii.gz", sick)
        write(root / f"s{i}_healthy.nii.gz", healthy)
        write(root / f"s{i}_mask.nii.gz", mask)
        lines.append(f"s{i},s{i}_t1.nii.gz,s{i}_mask.nii.gz,s{i}_healthy.nii.gz")
    lines.append("h0,s0_healthy.nii.gz,,")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def test_prepare_writes_a_model_space_cache(tmp_path):
    manifest = prepare(make_dataset(tmp_path / "raw"), tmp_path / "cache", SPACE, progress=False)
    records = read_manifest(manifest)
    assert len(records) == 5
    assert {r.split for r in records} == {"train", "val", "test"}
    assert read_space(tmp_path / "cache") == SPACE
    ds = PreparedDataset(tmp_path / "cache")
    item = ds[0]
    assert item["image"].shape == (1, *SPACE.size) and item["image"].dtype == torch.float32
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    assert item["has_mask"] and item["mask"].sum() > 0
    healthy = next(i for i in range(len(ds)) if ds[i]["subject"] == "h0")
    assert not ds[healthy]["has_mask"] and ds[healthy]["mask"].sum() == 0
    assert (
        sum(len(PreparedDataset(tmp_path / "cache", split=s)) for s in ("train", "val", "test"))
        == 5
    )
    g = Geometry.load(tmp_path / "cache" / "geometry" / "s0.json")
    assert g.native_shape == phantom_brain().shape
    # healthy ground truth shares the pathological scan's model space: equal outside the lesion
    img = np.asarray(nib.load(tmp_path / "cache" / "images" / "s1.nii.gz").dataobj)
    ref = np.asarray(nib.load(tmp_path / "cache" / "healthy" / "s1.nii.gz").dataobj)
    lesion = np.asarray(nib.load(tmp_path / "cache" / "masks" / "s1.nii.gz").dataobj) > 0
    assert np.abs(img - ref)[~lesion].mean() < 0.02
    assert img[lesion].mean() < ref[lesion].mean() - 0.1


def test_prepare_reports_every_problem_at_once_and_writes_nothing(tmp_path):
    raw = tmp_path / "raw"
    make_dataset(raw)
    write(raw / "s1_mask.nii.gz", lesion_mask().astype(np.float32) * 0.7)  # non-binary
    write(raw / "s2_mask.nii.gz", lesion_mask(), np.diag([3.0, 3.0, 3.0, 1.0]))  # other grid
    (raw / "s3_t1.nii.gz").unlink()  # missing
    with pytest.raises(InputError) as err:
        prepare(raw / "manifest.csv", tmp_path / "cache", SPACE, progress=False)
    message = str(err.value)
    assert message.startswith("3 of 5 scans have problems")
    assert "s1_mask.nii.gz: mask is not binary" in message
    assert "s2_mask.nii.gz: affine differs" in message
    assert "s3_t1.nii.gz: file not found" in message
    assert not (tmp_path / "cache").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_prepare_refuses_a_lesion_the_grid_would_cut(tmp_path):
    raw = tmp_path / "raw"
    make_dataset(raw, n=1, x=32)  # 24 mm right of centre: beyond a 10-voxel grid of 3 mm
    with pytest.raises(InputError, match="lesion voxels lie outside"):
        prepare(raw / "manifest.csv", tmp_path / "c", ModelSpace((10, 10, 10), 3.0), progress=False)


def test_prepare_refuses_existing_output(tmp_path):
    (tmp_path / "cache").mkdir()
    with pytest.raises(OutputExistsError):
        prepare(make_dataset(tmp_path / "raw"), tmp_path / "cache", SPACE, progress=False)

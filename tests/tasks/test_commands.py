"""The four task commands end to end on a micro pipeline (random weights): outputs, grids,
determinism, batch mode, export, and every bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import lesion_mask, phantom_brain, write
from tests.tasks.conftest import LESION, lps_anisotropic
from usbrain.cli import main

RESULT_FILES = ["image.nii.gz", "mask.nii.gz", "montage.png", "usbrain.json"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def same_bytes(a, b):
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in RESULT_FILES)


def test_generate_writes_pairs_deterministically_and_exports_nnunet(pipeline_dir, tmp_path, capsys):
    base = ["generate", "--checkpoint", pipeline_dir, "-n", "2", "--steps", "4"]
    assert (
        run(capsys, *base, "--out", tmp_path / "a", "--export", "nnunet", tmp_path / "nn")[0] == 0
    )
    assert run(capsys, *base, "--out", tmp_path / "b")[0] == 0
    assert run(capsys, *base, "--out", tmp_path / "c", "--seed", "5")[0] == 0
    a = tmp_path / "a"
    assert files(a) == ["sample_000", "sample_001"] and files(a / "sample_000") == RESULT_FILES
    assert same_bytes(a / "sample_001", tmp_path / "b" / "sample_001")
    assert not same_bytes(a / "sample_000", tmp_path / "c" / "sample_000")
    img = nib.load(a / "sample_000" / "image.nii.gz")
    mask = nib.load(a / "sample_000" / "mask.nii.gz")
    assert img.shape == (16, 16, 16) and img.get_data_dtype() == np.float32
    assert mask.get_data_dtype() == np.uint8 and np.allclose(img.affine, mask.affine)
    record = json.loads((a / "sample_000" / "usbrain.json").read_text())
    assert record["command"] == "generate" and record["seed"] == 0
    assert record["parameters"]["steps"] == 4 and len(record["weights_sha256"]) == 64
    dataset = json.loads((tmp_path / "nn" / "dataset.json").read_text())
    assert dataset["numTraining"] == 2 and dataset["labels"] == {"background": 0, "lesion": 1}
    assert files(tmp_path / "nn" / "imagesTr") == ["usb_0000_0000.nii.gz", "usb_0001_0000.nii.gz"]
    assert files(tmp_path / "nn" / "labelsTr") == ["usb_0000.nii.gz", "usb_0001.nii.gz"]


def test_generate_healthy_gives_empty_masks(pipeline_dir, tmp_path, capsys):
    out = tmp_path / "h"
    assert run(capsys, "generate", "--checkpoint", pipeline_dir, "--out", out, "--healthy")[0] == 0
    assert not np.asarray(nib.load(out / "sample_000" / "mask.nii.gz").dataobj).any()


def test_condition_returns_to_the_mask_grid(pipeline_dir, tmp_path, capsys):
    mask = lesion_mask(**LESION)
    path = lps_anisotropic(mask, tmp_path / "m.nii.gz")
    out = tmp_path / "c"
    args = ["condition", "--checkpoint", pipeline_dir, "--mask", path, "-n", "2", "--steps", "3"]
    assert run(capsys, *args, "--out", out)[0] == 0
    given = nib.load(path)
    for sample in ("sample_000", "sample_001"):
        img = nib.load(out / sample / "image.nii.gz")
        assert img.shape == given.shape and np.array_equal(img.affine, given.affine)
        assert np.array_equal(
            np.asarray(nib.load(out / sample / "mask.nii.gz").dataobj),
            np.asarray(given.dataobj).astype(np.uint8),
        )
    assert run(capsys, *args, "--out", tmp_path / "c2")[0] == 0
    assert same_bytes(out / "sample_001", tmp_path / "c2" / "sample_001")


@pytest.mark.parametrize("command", ["heal", "lesion"])
def test_edits_come_back_in_the_native_lps_anisotropic_space(
    command, pipeline_dir, tmp_path, capsys
):
    source = phantom_brain()
    mask = lesion_mask(**LESION)
    if command == "heal":
        source[mask > 0] = 300.0
    image = lps_anisotropic(source, tmp_path / "t1.nii.gz")
    mask_path = lps_anisotropic(mask, tmp_path / "m.nii.gz")
    args = [command, "--checkpoint", pipeline_dir, "--image", image, "--mask", mask_path]
    assert run(capsys, *args, "--out", tmp_path / "a")[0] == 0
    assert run(capsys, *args, "--out", tmp_path / "b")[0] == 0
    assert same_bytes(tmp_path / "a", tmp_path / "b")
    given, out = nib.load(image), nib.load(tmp_path / "a" / "image.nii.gz")
    assert out.shape == given.shape and np.array_equal(out.affine, given.affine)
    assert "".join(nib.aff2axcodes(out.affine)) == "LPS"
    record = json.loads((tmp_path / "a" / "usbrain.json").read_text())
    assert record["command"] == command and record["steps_taken"] >= 1
    # --blend leaves everything far from the lesion exactly as it was.
    assert run(capsys, *args, "--out", tmp_path / "blend", "--blend")[0] == 0
    blended = np.asarray(nib.load(tmp_path / "blend" / "image.nii.gz").dataobj)
    lesion_at = np.argwhere(np.asarray(nib.load(mask_path).dataobj) > 0).mean(0)
    dist = np.linalg.norm((np.indices(blended.shape).T - lesion_at).T * 2.2, axis=0)
    far = dist > 40
    assert far.any() and np.array_equal(blended[far], np.asarray(given.dataobj)[far])


def test_lesion_propose_writes_the_mask_it_used_or_says_none(pipeline_dir, scans, tmp_path, capsys):
    out = tmp_path / "p"
    code, err = run(
        capsys,
        "lesion",
        "--checkpoint",
        pipeline_dir,
        "--image",
        scans["healthy"],
        "--propose",
        "--out",
        out,
    )
    if code == 0:
        assert files(out) == RESULT_FILES
        assert np.asarray(nib.load(out / "mask.nii.gz").dataobj).any()
    else:  # random weights may propose nothing: then a clear error and nothing written
        assert code == 2 and "proposed no lesion" in err and not out.exists()


def test_manifest_batch_mode_resumes(pipeline_dir, scans, tmp_path, capsys):
    csv = tmp_path / "jobs.csv"
    csv.write_text(
        f"id,image,mask\nsubA,{scans['image'].name},{scans['mask'].name}\n"
        f"subB,{scans['image'].name},{scans['mask'].name}\n"
    )
    out = tmp_path / "batch"
    args = ["heal", "--checkpoint", pipeline_dir, "--manifest", csv, "--out", out, "--steps", "10"]
    assert run(capsys, *args)[0] == 0
    assert files(out) == ["subA", "subB"] and files(out / "subA") == RESULT_FILES
    before = (out / "subA" / "image.nii.gz").stat().st_mtime_ns
    for f in (out / "subB").iterdir():
        f.unlink()
    (out / "subB").rmdir()
    assert run(capsys, *args)[0] == 0  # only subB runs again
    assert (out / "subA" / "image.nii.gz").stat().st_mtime_ns == before
    assert same_bytes(out / "subA", out / "subB")


def _other_grid(scans, tmp_path):
    """The scan's mask on a grid shifted by 1 mm."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[0, 3] = 1.0
    return write(tmp_path / "shifted.nii.gz", np.asarray(nib.load(scans["mask"]).dataobj), affine)


BAD = {
    "mask on another grid": (
        lambda s, t: ["--image", s["image"], "--mask", _other_grid(s, t)],
        "--resample-mask",
    ),
    "empty mask": (
        lambda s, t: [
            "--image",
            s["image"],
            "--mask",
            write(t / "empty.nii.gz", np.zeros((40, 44, 36), np.uint8)),
        ],
        "the mask is empty",
    ),
    "mask outside the brain": (
        lambda s, t: [
            "--image",
            s["image"],
            "--mask",
            write(t / "out.nii.gz", lesion_mask(centre=(2, 2, 2), radius=2)),
        ],
        "outside the brain",
    ),
    "not a pipeline": (
        lambda s, t: ["--image", s["image"], "--mask", s["mask"], "--checkpoint", t],
        "not a usbrain pipeline",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_edit_inputs_fail_cleanly(case, pipeline_dir, scans, tmp_path, capsys):
    make, message = BAD[case]
    out = tmp_path / "out"
    code, err = run(
        capsys, "heal", "--checkpoint", pipeline_dir, *make(scans, tmp_path), "--out", out
    )
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_resample_mask_accepts_a_mask_on_another_grid(pipeline_dir, scans, tmp_path, capsys):
    args = ["--image", scans["image"], "--mask", _other_grid(scans, tmp_path), "--resample-mask"]
    assert run(capsys, "heal", "--checkpoint", pipeline_dir, *args, "--out", tmp_path / "o")[0] == 0


def test_a_lesion_the_model_grid_would_cut_is_refused(pipeline_dir, tmp_path, capsys):
    # A long scan (200 mm along z) with the lesion near its end: outside the 96 mm grid.
    image = np.zeros((40, 44, 100), np.float32)
    image[:, :, :36] = phantom_brain()
    image[8:32, 8:36, 36:96] = 700.0
    mask = np.zeros(image.shape, np.uint8)
    mask[18:22, 20:24, 90:94] = 1
    args = [
        "--image",
        write(tmp_path / "i.nii.gz", image),
        "--mask",
        write(tmp_path / "m.nii.gz", mask),
        "--out",
        tmp_path / "o",
    ]
    code, err = run(capsys, "lesion", "--checkpoint", pipeline_dir, *args)
    assert code == 2 and "would be cut" in err and not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(pipeline_dir, scans, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    args = [
        "heal",
        "--checkpoint",
        pipeline_dir,
        "--image",
        scans["image"],
        "--mask",
        scans["mask"],
        "--out",
        out,
    ]
    code, err = run(capsys, *args)
    assert code == 2 and "--overwrite" in err
    assert run(capsys, *args, "--overwrite")[0] == 0 and files(out) == RESULT_FILES


def test_lesion_needs_a_mask_or_propose(pipeline_dir, scans, tmp_path, capsys):
    code, err = run(
        capsys,
        "lesion",
        "--checkpoint",
        pipeline_dir,
        "--image",
        scans["healthy"],
        "--out",
        tmp_path / "o",
    )
    assert code == 2 and "--propose" in err

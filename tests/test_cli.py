"""Every bad input a user can give: one line naming file and problem, exit 2, nothing written."""

from __future__ import annotations

import gzip
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import lesion_mask, phantom_brain, write
from usbrain.cli import main


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_cli(capsys, args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err


def truncated(path):
    good = write(path.with_name("good.nii.gz"), phantom_brain())
    path.write_bytes(gzip.compress(gzip.decompress(good.read_bytes())[:5000]))
    good.unlink()


BAD_IMAGES = {
    "missing": (lambda p: None, "file not found"),
    "unreadable": (lambda p: p.write_bytes(b"\x00garbage" * 100), "not a readable NIfTI"),
    "truncated": (truncated, "truncated"),
    "4d": (lambda p: write(p, np.ones((8, 8, 8, 2), np.float32)), "4D image with 2 volumes"),
    "nan": (lambda p: write(p, np.where(phantom_brain() > 0, np.nan, 0).astype(np.float32)), "NaN"),
    "all-zero": (lambda p: write(p, np.zeros((8, 8, 8), np.float32)), "all zeros"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_show_bad_image(tmp_path, capsys, case):
    make, message = BAD_IMAGES[case]
    image = tmp_path / "scan.nii.gz"
    make(image)
    before = listing(tmp_path)
    code, err = run_cli(capsys, ["show", image, "--out", tmp_path / "m.png"])
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{image}: " in err and message in err
    assert listing(tmp_path) == before


def test_show_not_nifti(tmp_path, capsys):
    image = tmp_path / "scan.png"
    image.write_bytes(b"\x89PNG")
    code, err = run_cli(capsys, ["show", image, "--out", tmp_path / "m.png"])
    assert code == 2 and "not a NIfTI file name" in err and str(image) in err
    assert not (tmp_path / "m.png").exists()


def test_show_mask_on_another_grid_and_non_binary(tmp_path, capsys, scan_pair):
    image, _ = scan_pair
    other = write(tmp_path / "other.nii.gz", lesion_mask(), np.diag([3.0, 3.0, 3.0, 1.0]))
    code, err = run_cli(capsys, ["show", image, "--mask", other, "--out", tmp_path / "m.png"])
    assert code == 2 and f"{other}: affine differs" in err
    prob = write(tmp_path / "prob.nii.gz", lesion_mask() * np.float32(0.6))
    code, err = run_cli(capsys, ["show", image, "--mask", prob, "--out", tmp_path / "m.png"])
    assert code == 2 and f"{prob}: mask is not binary" in err and "--threshold" in err
    assert not (tmp_path / "m.png").exists()
    # with an explicit rule the same file is accepted
    code, _ = run_cli(
        capsys, ["show", image, "--mask", prob, "--threshold", "0.5", "--out", tmp_path / "m.png"]
    )
    assert code == 0 and (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_existing_output_needs_overwrite(tmp_path, capsys, scan_pair):
    image, mask = scan_pair
    out = tmp_path / "m.png"
    out.write_bytes(b"keep me")
    code, err = run_cli(capsys, ["show", image, "--mask", mask, "--out", out])
    assert code == 2 and f"{out}: already exists; pass --overwrite" in err
    assert out.read_bytes() == b"keep me"
    code, _ = run_cli(capsys, ["show", image, "--mask", mask, "--out", out, "--overwrite"])
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG"


def test_pseudo_refuses_an_empty_lesion_mask(tmp_path, capsys):
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    write(healthy / "h1.nii.gz", phantom_brain())
    lesions = tmp_path / "lesions"
    lesions.mkdir()
    empty = write(lesions / "l1.nii.gz", np.zeros(phantom_brain().shape, np.uint8))
    out = tmp_path / "out"
    code, err = run_cli(
        capsys, ["pseudo", "--healthy", healthy, "--lesions", lesions, "--out", out]
    )
    assert code == 2 and str(empty) in err and "empty" in err and "Traceback" not in err
    assert not out.exists()


def test_prepare_reports_all_problems_then_exits_2(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw / "a.nii.gz", np.zeros((8, 8, 8), np.float32))
    write(raw / "b.nii.gz", np.ones((8, 8, 8, 3), np.float32))
    code, err = run_cli(capsys, ["prepare", raw, "--out", tmp_path / "cache"])
    assert code == 2 and "2 of 2 scans have problems" in err
    assert "a.nii.gz: the image is all zeros" in err and "b.nii.gz: 4D image" in err
    assert "Traceback" not in err and not (tmp_path / "cache").exists()


def test_unknown_preset_is_a_user_error(tmp_path, capsys, scan_pair):
    code, err = run_cli(
        capsys, ["prepare", scan_pair[0].parent, "--out", tmp_path / "c", "--preset", "huge"]
    )
    assert code == 2 and "unknown preset 'huge'" in err


def test_prepare_takes_the_config_keys_every_training_command_takes(tmp_path, capsys):
    from usbrain.data.cache import read_space

    (tmp_path / "raw").mkdir()
    write(tmp_path / "raw" / "t1.nii.gz", phantom_brain())
    exp = tmp_path / "exp.yaml"
    exp.write_text("preset: base\nspace: {spacing: 8.0}\n")
    args = ["prepare", tmp_path / "raw", "--out", tmp_path / "c", "--config", exp]
    code, err = run_cli(capsys, [*args, "--set", "space.size=[32,32,32]"])
    assert code == 0, err
    space = read_space(tmp_path / "c")
    assert space.size == (32, 32, 32) and space.spacing == 8.0
    assert nib.load(next((tmp_path / "c" / "images").glob("*.nii.gz"))).shape == (32, 32, 32)


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "usbrain",
            "show",
            str(tmp_path / "nope.nii.gz"),
            "--out",
            str(tmp_path / "x.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"usbrain show: error: {tmp_path / 'nope.nii.gz'}: file not found"


def test_task_help_gives_every_presets_sampling_defaults(capsys):
    from usbrain.config import load_config, preset_names

    with pytest.raises(SystemExit):
        main(["lesion", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in preset_names():
        s = load_config(name).sampling
        assert f"{name} {s.steps}" in text and f"{name} {s.t_start_lesion}" in text
        assert f"{name} {s.sampler}" in text and f"{name} {s.eta}" in text

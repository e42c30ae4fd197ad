"""A command's stderr carries usbrain's lines only (usbrain.logs)."""

from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np


def bad_header_scan(path):
    img = nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4))
    img.header["pixdim"][1] = 0  # nibabel logs a header note when it loads this
    nib.save(img, path)
    return path


def run(args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "usbrain", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_a_user_error_is_the_only_line_on_stderr(tmp_path):
    scan = bad_header_scan(tmp_path / "scan.nii.gz")
    proc = run(["show", scan, "--out", tmp_path / "m.png"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"usbrain show: error: {scan}: the image is all zeros"]


def test_debug_lets_library_lines_through(tmp_path):
    scan = bad_header_scan(tmp_path / "scan.nii.gz")
    proc = run(["show", scan, "--out", tmp_path / "m.png"], {**os.environ, "USBRAIN_DEBUG": "1"})
    assert proc.returncode == 2 and "pixdim" in proc.stderr

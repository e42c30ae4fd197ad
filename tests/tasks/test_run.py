"""Task commands run the way clusters run them: several at once into one folder, batch jobs
killed at random points and rerun (usbrain.tasks.run on usbrain.files' claims)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from usbrain.cli import main

RESULT_FILES = ["image.nii.gz", "mask.nii.gz", "montage.png", "usbrain.json"]
REFUSED = ("already exists", "another usbrain run is writing it")


def start(args: list) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "usbrain", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def image_of(folder: Path) -> np.ndarray:
    return np.asarray(nib.load(folder / "image.nii.gz").dataobj)


def results(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".partial-" in p.name or p.name.endswith(".lock")]


@pytest.mark.parametrize("command", ["heal", "generate"])
def test_runs_started_at_once_into_one_out_leave_one_whole_result(
    command, pipeline_dir, scans, tmp_path, capsys
):
    out = tmp_path / "shared"
    inputs = ["--image", scans["image"], "--mask", scans["mask"]] if command == "heal" else []
    base = [command, "--checkpoint", pipeline_dir, *inputs, "--out", out, "--steps", "20"]
    seeds = [11, 12, 13]
    procs = {seed: start([*base, "--seed", seed]) for seed in seeds}
    codes = {seed: p.wait(timeout=600) for seed, p in procs.items()}
    errors = {seed: p.stderr.read() for seed, p in procs.items()}

    winners = [seed for seed, code in codes.items() if code == 0]
    assert len(winners) == 1, (codes, errors)
    for seed in set(seeds) - set(winners):
        assert codes[seed] == 2, errors[seed]
        lines = errors[seed].splitlines()
        assert len(lines) == 1 and any(why in lines[0] for why in REFUSED), lines
        assert str(out) in lines[0] and "Traceback" not in errors[seed]

    result = out if command == "heal" else out / "sample_000"
    assert sorted(p.name for p in result.iterdir()) == RESULT_FILES
    assert json.loads((result / "usbrain.json").read_text())["seed"] == winners[0]
    again = tmp_path / "again"  # the surviving image is the winner's run, not a mix
    rerun = [*base[:-4], "--out", again, "--steps", 20, "--seed", winners[0]]
    assert main(list(map(str, rerun))) == 0
    capsys.readouterr()
    again = again if command == "heal" else again / "sample_000"
    assert np.array_equal(image_of(result), image_of(again))
    assert leftovers(tmp_path) == []


def test_a_batch_killed_three_times_then_rerun_ends_complete(pipeline_dir, scans, tmp_path):
    rows = [f"sub{i:02d}" for i in range(8)]
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "id,image,mask\n"
        + "".join(f"{r},{scans['image'].name},{scans['mask'].name}\n" for r in rows)
    )
    out = tmp_path / "batch"
    args = ["heal", "--checkpoint", pipeline_dir, "--manifest", manifest, "--out", out]
    args += ["--steps", "30"]
    rng = np.random.default_rng(0)
    finished: dict[str, int] = {}  # row → its sidecar's mtime when first seen finished
    for _ in range(3):
        proc = start(args)
        done_before = len(finished)
        deadline = time.monotonic() + 600
        # Kill once this run has finished a new row, a random moment into the next one.
        while len(results(out)) <= done_before:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.6)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for row in results(out):
            assert sorted(p.name for p in row.iterdir()) == RESULT_FILES  # whole, or absent
            finished.setdefault(row.name, (row / "usbrain.json").stat().st_mtime_ns)
    assert 3 <= len(finished) < len(rows), finished  # progress every sitting, not all done

    proc = start(args)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert sorted(p.name for p in out.iterdir()) == rows
    for row in rows:
        assert sorted(p.name for p in (out / row).iterdir()) == RESULT_FILES
        image_of(out / row)  # a valid NIfTI
        assert json.loads((out / row / "usbrain.json").read_text())["command"] == "heal"
    for row, mtime in finished.items():  # finished rows were not redone
        assert (out / row / "usbrain.json").stat().st_mtime_ns == mtime
    assert leftovers(tmp_path) == []

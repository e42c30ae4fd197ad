"""Training run folders: ``--overwrite`` keeps the old run until the new one is complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train.paired_worker import make_latents, run
from usbrain.errors import OutputExistsError
from usbrain.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]


def test_a_killed_overwrite_leaves_the_previous_run_loadable(tmp_path):
    latents = make_latents(tmp_path)
    out = tmp_path / "run"
    run(latents, out)
    before = Pipeline.from_pretrained(out / "pipeline").weights_sha256
    with pytest.raises(OutputExistsError, match="already exists"):
        run(latents, out)

    # A long rerun (many steps), killed as soon as it starts filling its staging folder.
    staged = tmp_path / ".run.partial-staged"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.train.paired_worker",
            str(latents),
            str(out),
            "train_diffusion.steps=100000",
            "train_diffusion.save_every=1",
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 180
    while not (staged / "metrics.jsonl").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert Pipeline.from_pretrained(out / "pipeline").weights_sha256 == before

    run(latents, out, True, "seed=1")  # a finished overwrite replaces it, and tidies up
    assert Pipeline.from_pretrained(out / "pipeline").weights_sha256 != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae", "latents", "run"]

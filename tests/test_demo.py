"""``usbrain demo`` end to end at micro scale: cohort, training, four tasks, report."""

from __future__ import annotations

import json
import re

from tests.conftest import MICRO_OVERRIDES
from usbrain.cli import main

FEW_STEPS = [
    "train_autoencoder.steps=4",
    "train_autoencoder.val_every=2",
    "train_diffusion.steps=4",
    "train_diffusion.val_every=2",
]


def test_demo_trains_runs_the_four_tasks_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    sets = [a for item in [*MICRO_OVERRIDES, *FEW_STEPS] for a in ("--set", item)]
    assert main(["demo", "--out", str(out), "--subjects", "10", "--size", "32", *sets]) == 0
    report = (out / "report.md").read_text()
    for heading in ("## Training", "### Heal", "### Lesion insertion", "### Conditional"):
        assert heading in report
    assert (out / "train" / "diffusion" / "pipeline" / "denoiser.safetensors").is_file()
    # the autoencoder is scored on every split, and the report shows all of them
    scores = json.loads((out / "train" / "autoencoder" / "reconstruction.json").read_text())
    assert set(scores) == {"train", "val", "test"}
    assert all(0.0 < s["ssim"] <= 1.0 and s["psnr"] > 0 for s in scores.values())
    assert "| autoencoder (EMA weights) | train | val | test |" in report
    assert "Changed from the `tiny` preset:" in report and "`train_diffusion.steps=4`" in report
    for task in ("heal", "lesion", "condition", "generate"):
        folders = list((out / "tasks" / task).iterdir())
        assert folders and all((f / "usbrain.json").is_file() for f in folders)
    for image in re.findall(r"\]\((figures/[^)]+)\)", report):
        assert (out / image).is_file(), image

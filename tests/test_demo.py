"""``usbrain demo`` end to end at micro scale: cohort, training, four tasks, report."""

from __future__ import annotations

import json
import re

from tests.conftest import MICRO_OVERRIDES, micro_config
from usbrain import demo
from usbrain.cli import main
from usbrain.pipeline import Pipeline

FEW_STEPS = [
    "train_autoencoder.steps=4",
    "train_autoencoder.val_every=2",
    "train_diffusion.steps=4",
    "train_diffusion.val_every=2",
]


def test_demo_trains_runs_the_four_tasks_and_reports(tmp_path, capsys, monkeypatch):
    # A shipped model (random weights here) is shown first, then set beside the tiny run.
    shipped = micro_config("space.size=[48,48,48]", "space.spacing=4.0")  # keeps small lesions
    Pipeline.build(shipped).save_pretrained(tmp_path / "models" / "base")
    monkeypatch.setattr(demo, "SHIPPED_MODELS", tmp_path / "models")
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
    base = report.index("## The shipped `base` model on held-out subjects")
    assert base < report.index("## Training") < report.index("## Side by side")
    assert "### Heal without a mask" in report[base : report.index("## Training")]
    for task in ("heal", "heal-without-mask", "lesion", "condition", "generate"):
        folders = list((out / "tasks_base" / task).iterdir())
        assert folders and all((f / "usbrain.json").is_file() for f in folders)
    side = report.split("## Side by side")[1]
    assert "| median over held-out subjects | `base` | `tiny` |" in side
    for image in re.findall(r"\]\((figures/[^)]+)\)", report):
        assert (out / image).is_file(), image

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import micro_config
from tests.train.worker import STEPS, run
from usbrain.config import TrainConfig
from usbrain.errors import ConfigError
from usbrain.train.checkpoint import load_checkpoint
from usbrain.train.distributed import World
from usbrain.train.loop import batch_indices

ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    _, ema_a = run(tmp_path / "a")
    ref = load_checkpoint(tmp_path / "a" / "checkpoint")

    kill_after = random.Random().randint(3, STEPS - 8)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.train.worker", str(tmp_path / "b")], cwd=ROOT
    )
    deadline = time.time() + 120
    while len(lines(tmp_path / "b" / "metrics.jsonl")) < kill_after and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = load_checkpoint(tmp_path / "b" / "checkpoint").meta["step"]
    assert 0 < killed_at < STEPS, killed_at

    run(tmp_path / "b", resume=True)
    resumed = load_checkpoint(tmp_path / "b" / "checkpoint")
    assert resumed.meta["step"] == STEPS
    for name in ("model", "ema"):
        ref_w, new_w = getattr(ref, name), getattr(resumed, name)
        worst = max(float((ref_w[k] - new_w[k]).abs().max()) for k in ref_w)
        assert worst <= 1e-6, (name, worst, killed_at)
    # the log is continuous: one row per step, no duplicates from the killed run
    assert [row["step"] for row in lines(tmp_path / "b" / "metrics.jsonl")] == list(
        range(STEPS + 1)  # step 0 is the validation of the initial weights
    )
    assert ema_a is not None


def test_batches_cover_each_epoch_once_and_shard_across_processes():
    one = [batch_indices(10, 3, p, World(), seed=0) for p in range(3)]
    assert len({i for b in one for i in b}) == 9  # one epoch of 3 batches, last partial dropped
    assert one == [batch_indices(10, 3, p, World(), seed=0) for p in range(3)]  # deterministic
    r0 = batch_indices(10, 2, 0, World(rank=0, size=2), seed=0)
    r1 = batch_indices(10, 2, 0, World(rank=1, size=2), seed=0)
    assert not set(r0) & set(r1)


def test_batch_larger_than_the_data_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size: 8 is more than the 5"):
        batch_indices(5, 8, 0, World(), seed=0)


def test_validation_loss_falls_with_training(tmp_path):
    # ε-prediction: on the workers' white-noise latents the best v prediction is 0 (ε and z0
    # are equally likely given z_t), so only an ε loss can fall below its starting value.
    overrides = ("train_diffusion.val_every=1", "train_diffusion.steps=40")
    run(tmp_path / "r", False, *overrides, "diffusion.prediction=epsilon")
    rows = [r for r in lines(tmp_path / "r" / "metrics.jsonl") if "val/loss_brain" in r]
    first, last = rows[0], rows[-1]
    assert first["step"] == 0  # validated before the first update
    for key in ("val/loss_lesion", "val/loss_brain"):
        assert last[key] < first[key]
    assert TrainConfig().precision == "fp32"
    assert torch.isfinite(torch.tensor(last["loss"]))


def test_clipping_per_model_clips_each_unet_on_its_own():
    from usbrain.models.denoiser import PairedDenoiser
    from usbrain.train.loop import clip_gradients, clip_parameter_groups

    model = PairedDenoiser.from_config(micro_config())
    for p in model.lesion.parameters():
        p.grad = torch.full_like(p, 10.0)  # large
    for p in model.brain.parameters():
        p.grad = torch.full_like(p, 1e-4)  # small: one shared norm would shrink it too
    small = [p.grad.clone() for p in model.brain.parameters()]
    groups = clip_parameter_groups(model, per_model=True)
    assert len(groups) == 2 and len(clip_parameter_groups(model, per_model=False)) == 1
    before = torch.sqrt(sum(p.grad.square().sum() for p in model.parameters()))
    norm = clip_gradients(groups, 1.0)
    torch.testing.assert_close(norm, before)  # reported as one norm over all, before clipping
    lesion_norm = torch.sqrt(sum(p.grad.square().sum() for p in model.lesion.parameters()))
    torch.testing.assert_close(lesion_norm, torch.tensor(1.0))
    for p, g in zip(model.brain.parameters(), small, strict=True):
        assert torch.equal(p.grad, g)


def test_weight_decay_reaches_the_optimizer(tmp_path):
    decayed = run(
        tmp_path / "a", False, "train_diffusion.steps=2", "train_diffusion.weight_decay=0.5"
    )[0]
    plain = run(tmp_path / "b", False, "train_diffusion.steps=2", "train_diffusion.weight_decay=0")[
        0
    ]
    same = run(tmp_path / "c", False, "train_diffusion.steps=2", "train_diffusion.weight_decay=0")[
        0
    ]
    p = dict(plain.named_parameters())
    assert all(torch.equal(v, p[k]) for k, v in same.named_parameters())
    assert any(not torch.equal(v, p[k]) for k, v in decayed.named_parameters())

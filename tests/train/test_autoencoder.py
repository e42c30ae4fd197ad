from __future__ import annotations

import pytest
import torch

from tests.conftest import micro_config
from usbrain.config import AutoencoderConfig
from usbrain.models.autoencoder import Autoencoder
from usbrain.train.autoencoder import AdversarialTerm, AutoencoderJob, AutoencoderObjective
from usbrain.train.checkpoint import load_checkpoint
from usbrain.train.distributed import World
from usbrain.train.loop import train


class Fixed(torch.nn.Module):
    """An 'autoencoder' returning a given reconstruction (and a unit posterior)."""

    def __init__(self, recon: torch.Tensor) -> None:
        super().__init__()
        self.recon = recon

    def forward(self, x):
        return self.recon, torch.zeros(2, 1, 1, 1, 1), torch.ones(2, 1, 1, 1, 1)


def test_clamped_l1_counts_only_overshoot_at_the_bounds():
    image = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 3, 1, 1)
    mask = torch.zeros_like(image)
    recon = torch.tensor([-0.2, 0.4, 1.3, 0.1, 0.0, 0.0]).reshape(2, 1, 3, 1, 1)
    clamped = AutoencoderObjective(Fixed(recon), 0.0, 1.0, clamped_l1=True)(image, mask)
    plain = AutoencoderObjective(Fixed(recon), 0.0, 1.0)(image, mask)
    # below 0 at a 0 target and above 1 at a 1 target cost nothing; inside the range as before
    assert torch.isclose(clamped["l1_image"], torch.tensor(0.1 / 3))
    assert torch.isclose(plain["l1_image"], torch.tensor((0.2 + 0.1 + 0.3) / 3))
    assert torch.isclose(clamped["l1_mask"], torch.tensor(0.1 / 3))


def test_objective_runs_on_the_real_autoencoder():
    ae = Autoencoder(AutoencoderConfig(channels=(8, 8), num_res_blocks=1, norm_num_groups=4))
    losses = AutoencoderObjective(ae, 1e-6, 10.0, clamped_l1=True)(
        torch.rand(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 8)
    )
    assert torch.isfinite(losses["loss"])


def test_mask_dice_term_is_soft_dice_of_the_clamped_mask_reconstruction():
    image = torch.full((1, 1, 4, 1, 1), 0.5)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 4, 1, 1)
    mask_recon = torch.tensor([1.4, 0.5, 0.5, -0.3])  # clamped: 1, 0.5, 0.5, 0
    recon = torch.cat([image, mask_recon.reshape(1, 1, 4, 1, 1)])
    losses = AutoencoderObjective(Fixed(recon), 0.0, 1.0, mask_dice_weight=2.0)(image, mask)
    dice = 2 * 1.5 / (2.0 + 2.0)  # 2·Σ p·g / (Σ p + Σ g)
    assert torch.isclose(losses["dice_mask"], torch.tensor(1 - dice), atol=1e-4)
    without = AutoencoderObjective(Fixed(recon), 0.0, 1.0)(image, mask)
    assert "dice_mask" not in without
    assert torch.isclose(losses["loss"], without["loss"] + 2.0 * losses["dice_mask"])


class Volumes(torch.utils.data.Dataset):
    """Two 16³ image/mask items."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return {"image": torch.rand(1, 16, 16, 16), "mask": torch.zeros(1, 16, 16, 16)}


def test_patches_until_the_last_whole_volume_steps():
    config = micro_config(
        "autoencoder.train_patch=8",
        "autoencoder.whole_volume_steps=2",
        "train_autoencoder.steps=5",
    )
    job = AutoencoderJob(config, Volumes(), Volumes())
    shapes = []
    for step in range(5):
        job.begin_step(step)
        batch = job.inputs([0, 1], torch.Generator().manual_seed(step), torch.device("cpu"))
        shapes.append(tuple(batch["images"].shape[2:]))
        assert batch["masks"].shape == batch["images"].shape
    assert shapes == [(8, 8, 8)] * 3 + [(16, 16, 16)] * 2


def test_adversarial_terms_reach_only_their_own_side():
    term = AdversarialTerm(channels=4, layers=2)
    source = torch.rand(1, 1, 16, 16, 16, requires_grad=True)
    fake, real = source * 1.0, torch.rand(1, 1, 16, 16, 16)
    generator, discriminator = term(fake, real)
    generator.backward(retain_graph=True)
    assert source.grad is not None and source.grad.abs().sum() > 0
    assert all(p.grad is None for p in term.discriminator.parameters())
    source.grad = None
    discriminator.backward()
    assert source.grad is None  # the discriminator's loss does not move the reconstruction
    assert all(p.grad is not None for p in term.discriminator.parameters())


def test_adversarial_term_switches_on_at_its_start_step():
    config = micro_config(
        "autoencoder.adversarial_weight=0.1",
        "autoencoder.adversarial_start=2",
        "autoencoder.discriminator_channels=4",
        "autoencoder.discriminator_layers=2",
    )
    job = AutoencoderJob(config, Volumes(), Volumes())
    assert job.auxiliary is not None and job.find_unused_parameters
    seen = []
    for step in range(4):
        job.begin_step(step)
        losses = job.objective(**job.inputs([0, 1], torch.Generator(), torch.device("cpu")))
        seen.append("adversarial" in losses)
    assert seen == [False, False, True, True]
    assert AutoencoderJob(micro_config(), Volumes(), Volumes()).auxiliary is None


class Stop(Exception):
    pass


def test_resume_restores_the_discriminator_and_gives_the_same_weights(tmp_path, monkeypatch):
    torch.use_deterministic_algorithms(True)
    config = micro_config(
        "autoencoder.adversarial_weight=0.1",
        "autoencoder.adversarial_start=1",
        "autoencoder.discriminator_channels=4",
        "autoencoder.discriminator_layers=2",
        "train_autoencoder.steps=5",
        "train_autoencoder.save_every=1",
        "train_autoencoder.val_every=5",
    )
    world = World()

    def run(out, resume=False):
        job = AutoencoderJob(config, Volumes(), Volumes())
        train(job, config, config.train_autoencoder, out, world, resume=resume, progress=False)
        return load_checkpoint(out / "checkpoint")

    whole = run(tmp_path / "a")
    begin = AutoencoderJob.begin_step

    def stop_at_3(self, step):
        if step == 3:
            raise Stop
        begin(self, step)

    monkeypatch.setattr(AutoencoderJob, "begin_step", stop_at_3)
    with pytest.raises(Stop):
        run(tmp_path / "b")
    assert load_checkpoint(tmp_path / "b" / "checkpoint").meta["step"] == 3
    monkeypatch.setattr(AutoencoderJob, "begin_step", begin)
    resumed = run(tmp_path / "b", resume=True)
    for name in ("model", "ema"):
        a, b = getattr(whole, name), getattr(resumed, name)
        assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6, name
    a, b = whole.state["auxiliary"], resumed.state["auxiliary"]
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_whole_volume_steps_run_at_their_own_learning_rate():
    config = micro_config(
        "autoencoder.train_patch=8",
        "autoencoder.whole_volume_steps=2",
        "autoencoder.whole_volume_lr=0.0003",
        "train_autoencoder.steps=5",
    )
    job = AutoencoderJob(config, Volumes(), Volumes())
    assert [job.learning_rate(s, 1e-6) for s in range(5)] == [1e-6] * 3 + [3e-4] * 2
    plain = AutoencoderJob(micro_config("autoencoder.whole_volume_steps=2"), Volumes(), Volumes())
    assert plain.learning_rate(4, 1e-6) == 1e-6  # 0: the schedule's

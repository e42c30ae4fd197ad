from __future__ import annotations

import torch

from tests.conftest import micro_config
from usbrain.config import AutoencoderConfig
from usbrain.models.autoencoder import Autoencoder
from usbrain.train.autoencoder import AutoencoderJob, AutoencoderObjective


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

"""Training the KL autoencoder on images and lesion masks (``usbrain train-ae``).

Each step reconstructs a batch of images and the same subjects' masks (one autoencoder for
both, as the authors do): L1 with lesion voxels up-weighted, plus β·KL, and optionally SSIM on
images and soft Dice on masks. Validation reports image
PSNR/SSIM and the Dice of decoded, thresholded masks, split by lesion size (≥ 5 mL and smaller).
"""

from __future__ import annotations

import torch
from monai.losses import DiceLoss
from torch import nn
from torch.utils.data import Dataset

from usbrain.config import Config, TrainConfig
from usbrain.evaluate.lesions import voxel_ml
from usbrain.evaluate.metrics import dice, psnr, ssim
from usbrain.models.autoencoder import Autoencoder, kl_divergence
from usbrain.train.losses import ssim_loss

LARGE_LESION_ML = 5.0


class AutoencoderObjective(nn.Module):
    """forward(images, masks) → losses; images/masks (B, 1, D, H, W)."""

    def __init__(
        self,
        autoencoder: Autoencoder,
        kl_weight: float,
        lesion_weight: float,
        clamped_l1: bool = False,
        ssim_weight: float = 0.0,
        mask_dice_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.kl_weight = kl_weight
        self.lesion_weight = lesion_weight
        self.clamped_l1 = clamped_l1
        self.ssim_weight = ssim_weight
        self.mask_dice_weight = mask_dice_weight
        self.mask_dice = DiceLoss(batch=True)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.cat([images, masks])
        recon, mu, sigma = self.autoencoder(x)
        recon = recon.float()
        error = (recon - x).abs()
        if self.clamped_l1:  # at a bound, only overshooting past it counts (see the config)
            error = torch.where(x <= 0, recon.clamp(min=0), error)
            error = torch.where(x >= 1, (1 - recon).clamp(min=0), error)
        n = images.shape[0]
        l1_image = error[:n].mean()
        weights = 1.0 + (self.lesion_weight - 1.0) * masks
        l1_mask = (error[n:] * weights).sum() / weights.sum()
        # As in MONAI's latent-diffusion recipes: per-voxel L1 means, KL summed over the latent.
        kl = kl_divergence(mu.float(), sigma.float())
        loss = l1_image + l1_mask + self.kl_weight * kl
        losses = {"l1_image": l1_image, "l1_mask": l1_mask, "kl": kl}
        if self.ssim_weight > 0:
            # Scored on the clamped output, as validation and every task use it.
            losses["ssim"] = ssim_loss(recon[:n].clamp(0, 1), images)
            loss = loss + self.ssim_weight * losses["ssim"]
        if self.mask_dice_weight > 0:
            losses["dice_mask"] = self.mask_dice(recon[n:].clamp(0, 1), masks)
            loss = loss + self.mask_dice_weight * losses["dice_mask"]
        return {"loss": loss, **losses}


def random_crop(
    volumes: list[torch.Tensor], size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """The same random ``size``³ crop of each (B, C, D, H, W) volume (whole if size is 0)."""
    shape = volumes[0].shape[2:]
    if size == 0 or size >= min(shape):
        return volumes
    start = [int(torch.randint(0, s - size + 1, (1,), generator=generator)) for s in shape]
    box = tuple(slice(a, a + size) for a in start)
    return [v[(slice(None), slice(None), *box)] for v in volumes]


def _stack(dataset: Dataset, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in indices]
    return torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items])


class AutoencoderJob:
    """The autoencoder as a :class:`~usbrain.train.loop.Job`."""

    kind = "autoencoder"
    find_unused_parameters = False

    def __init__(self, config: Config, train_set: Dataset, val_set: Dataset) -> None:
        ae_cfg = config.autoencoder
        self.config = config
        torch.manual_seed(config.seed)  # the initial weights are part of what the seed fixes
        self.model = Autoencoder(
            ae_cfg, checkpointing=config.train_autoencoder.activation_checkpointing
        )
        self.objective = AutoencoderObjective(
            self.model,
            ae_cfg.kl_weight,
            ae_cfg.lesion_weight,
            ae_cfg.clamped_l1,
            ae_cfg.ssim_weight,
            ae_cfg.mask_dice_weight,
        )
        self.train_set = train_set
        self.val_set = val_set
        self.num_items = len(train_set)
        self.voxel_ml = voxel_ml(config.space.spacing)
        self.patch = config.autoencoder.train_patch

    def total_steps(self, train: TrainConfig) -> int:
        return train.steps

    def begin_step(self, step: int) -> None:
        """Patches (``train_patch``) until the last ``whole_volume_steps`` steps."""
        ae_cfg, total = self.config.autoencoder, self.config.train_autoencoder.steps
        self.patch = ae_cfg.train_patch if step < total - ae_cfg.whole_volume_steps else 0

    def inputs(
        self, indices: list[int], generator: torch.Generator, device: torch.device
    ) -> dict[str, torch.Tensor]:
        images, masks = _stack(self.train_set, indices)
        images, masks = random_crop([images, masks], self.patch, generator)
        return {"images": images.to(device), "masks": masks.to(device)}

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Whole-volume reconstructions of the validation split."""
        return reconstruction_metrics(model, self.val_set, device, self.voxel_ml)

    @torch.no_grad()
    def snapshots(self, model: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
        """First validation subject: image, reconstruction, mask, decoded mask."""
        item = self.val_set[0]
        x = torch.stack([item["image"], item["mask"]]).to(device)
        recon = model.decode(model.encode(x)).clamp(0, 1)
        return {"val/reconstruction": mid_slices(torch.stack([x[0], recon[0], x[1], recon[1]]))}


def mid_slices(volumes: torch.Tensor) -> torch.Tensor:
    """Axial middle slices of (N, 1, D, H, W) volumes side by side: (1, H, N·D), anterior up."""
    mid = volumes.shape[-1] // 2
    return torch.cat([v[0, :, :, mid].T.flip(0) for v in volumes], dim=1)[None].clamp(0, 1)


@torch.no_grad()
def reconstruction_metrics(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    voxel_ml: float,
    prefix: str = "val/",
) -> dict[str, float]:
    """Mean image PSNR/SSIM and mask Dice (decode, threshold 0.5) over ``dataset``.

    Dice is reported separately for lesions of ≥ 5 mL (``dice_large``) and smaller ones
    (``dice_small``); healthy subjects (empty masks) are left out of both. Keys start with
    ``prefix``.
    """
    model.eval()
    psnrs, ssims, large, small = [], [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        image = item["image"][None].to(device)
        mask = item["mask"][None].to(device)
        recon = model.decode(model.encode(torch.cat([image, mask]))).clamp(0, 1)
        psnrs.append(float(psnr(recon[:1], image)))
        ssims.append(float(ssim(recon[:1], image)))
        volume_ml = float(mask.sum()) * voxel_ml
        if volume_ml > 0:
            d = float(dice(recon[1:] > 0.5, mask > 0.5))
            (large if volume_ml >= LARGE_LESION_ML else small).append(d)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    return {
        f"{prefix}psnr": mean(psnrs),
        f"{prefix}ssim": mean(ssims),
        f"{prefix}dice_large": mean(large),
        f"{prefix}dice_small": mean(small),
        f"{prefix}n_large": float(len(large)),
        f"{prefix}n_small": float(len(small)),
    }


@torch.no_grad()
def latent_scale_factor(model: Autoencoder, dataset: Dataset, device: torch.device) -> float:
    """1 / std of the unscaled image latents over ``dataset``: makes latents ~unit variance."""
    model.eval()
    latents = []
    for i in range(len(dataset)):
        mu, _ = model.net.encode(dataset[i]["image"][None].to(device))
        latents.append(mu.flatten().cpu())
    return float(1.0 / torch.cat(latents).std())

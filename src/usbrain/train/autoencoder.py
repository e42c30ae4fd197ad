"""Training the KL autoencoder on images and lesion masks (``usbrain train-ae``).

Each step reconstructs a batch of images and the same subjects' masks (one autoencoder for
both, as the authors do): L1 with lesion voxels up-weighted, plus β·KL, and optionally SSIM on
images, soft Dice on masks and a patch adversarial term on images (its discriminator trained in
the same step, :class:`AdversarialTerm`). Validation reports image
PSNR/SSIM and the Dice of decoded, thresholded masks, split by lesion size (≥ 5 mL and smaller).
"""

from __future__ import annotations

import torch
from monai.losses import DiceLoss, PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator
from torch import nn
from torch.func import functional_call
from torch.utils.data import Dataset

from usbrain.config import Config, TrainConfig
from usbrain.data.masks import voxel_ml
from usbrain.metrics import dice, psnr, ssim
from usbrain.models.autoencoder import Autoencoder, kl_divergence
from usbrain.train.losses import ssim_loss

LARGE_LESION_ML = 5.0


class AdversarialTerm(nn.Module):
    """A patch discriminator and both sides of its least-squares game, in one forward.

    forward(fake, real) → (generator loss, discriminator loss); (B, 1, D, H, W) each. The
    generator loss reaches the autoencoder only: it is computed with the discriminator's
    weights detached. The discriminator loss reaches the discriminator only: it sees ``fake``
    detached. Their sum can therefore be minimised by one optimizer over both models, which is
    what lets the loop keep one backward pass (and DDP one gradient all-reduce) per step.
    """

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        # Instance norm: batch statistics of a batch of one patch are that patch's statistics
        # anyway, and running averages would differ between the two calls of a step.
        self.discriminator = PatchDiscriminator(
            spatial_dims=3,
            num_layers_d=layers,
            channels=channels,
            in_channels=1,
            out_channels=1,
            norm="INSTANCE",
        )
        self.loss = PatchAdversarialLoss(criterion="least_squares")

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        judged = functional_call(self.discriminator, frozen, (fake,))[-1]
        generator = self.loss(judged, target_is_real=True, for_discriminator=False)
        fake_logits = self.discriminator(fake.detach())[-1]
        real_logits = self.discriminator(real)[-1]
        discriminator = 0.5 * (
            self.loss(fake_logits, target_is_real=False, for_discriminator=True)
            + self.loss(real_logits, target_is_real=True, for_discriminator=True)
        )
        return generator, discriminator


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
        adversarial: AdversarialTerm | None = None,
        adversarial_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.adversarial = adversarial
        self.adversarial_weight = adversarial_weight
        self.adversarial_on = False  # switched by the job at autoencoder.adversarial_start
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
        if self.adversarial is not None and self.adversarial_on:
            generator, discriminator = self.adversarial(recon[:n], images)
            losses["adversarial"], losses["discriminator"] = generator, discriminator
            loss = loss + self.adversarial_weight * generator + discriminator
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

    def __init__(self, config: Config, train_set: Dataset, val_set: Dataset) -> None:
        ae_cfg = config.autoencoder
        self.config = config
        torch.manual_seed(config.seed)  # the initial weights are part of what the seed fixes
        self.model = Autoencoder(
            ae_cfg, checkpointing=config.train_autoencoder.activation_checkpointing
        )
        # Trained beside the model, never averaged or shipped (the loop checkpoints it).
        self.auxiliary = (
            AdversarialTerm(ae_cfg.discriminator_channels, ae_cfg.discriminator_layers)
            if ae_cfg.adversarial_weight > 0
            else None
        )
        self.objective = AutoencoderObjective(
            self.model,
            ae_cfg.kl_weight,
            ae_cfg.lesion_weight,
            ae_cfg.clamped_l1,
            ae_cfg.ssim_weight,
            ae_cfg.mask_dice_weight,
            self.auxiliary,
            ae_cfg.adversarial_weight,
        )
        # Before adversarial_start the discriminator gets no gradient.
        self.find_unused_parameters = self.auxiliary is not None
        self.train_set = train_set
        self.val_set = val_set
        self.num_items = len(train_set)
        self.voxel_ml = voxel_ml(config.space.spacing)
        self.patch = config.autoencoder.train_patch

    def total_steps(self, train: TrainConfig) -> int:
        return train.steps

    def begin_step(self, step: int) -> None:
        """Patches (``train_patch``) until the last ``whole_volume_steps`` steps; the adversarial
        term from ``adversarial_start`` on."""
        ae_cfg, total = self.config.autoencoder, self.config.train_autoencoder.steps
        self.patch = ae_cfg.train_patch if step < total - ae_cfg.whole_volume_steps else 0
        self.objective.adversarial_on = step >= ae_cfg.adversarial_start

    def learning_rate(self, step: int, scheduled: float) -> float:
        """``whole_volume_lr`` in the whole-volume steps when set, else the schedule's."""
        ae_cfg, total = self.config.autoencoder, self.config.train_autoencoder.steps
        whole = step >= total - ae_cfg.whole_volume_steps
        return ae_cfg.whole_volume_lr if whole and ae_cfg.whole_volume_lr > 0 else scheduled

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


SCALE_SUBJECTS = 64  # enough for a std to 1%; all of a large cohort would cost minutes


@torch.no_grad()
def latent_scale_factor(model: Autoencoder, dataset: Dataset, device: torch.device) -> float:
    """1 / std of the unscaled image latents over ``dataset``'s first 64 scans: makes latents
    ~unit variance."""
    model.eval()
    latents = []
    for i in range(min(len(dataset), SCALE_SUBJECTS)):
        mu, _ = model.net.encode(dataset[i]["image"][None].to(device))
        latents.append(mu.flatten().cpu())
    return float(1.0 / torch.cat(latents).std())

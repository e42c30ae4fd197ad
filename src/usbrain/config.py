"""Typed configuration and presets.

Values live in one place: the dataclasses below, filled from a preset (``tiny``, ``paper``),
then from a YAML file, then from ``key.sub=value`` overrides. Every other module receives these
objects, never loose numbers. An unknown key, a wrong type or an impossible shape fails here,
before any training starts, with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from usbrain.errors import ConfigError


class Precision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


@dataclass(frozen=True)
class ModelSpace:
    """The grid every volume is brought to before the model sees it.

    RAS+, isotropic ``spacing`` mm, ``size`` voxels per axis, centred on the brain.

    >>> ModelSpace(size=(48, 48, 48), spacing=4.0).field_of_view_mm
    (192.0, 192.0, 192.0)
    """

    size: tuple[int, int, int] = (160, 160, 160)
    spacing: float = 1.0

    def __post_init__(self) -> None:
        if len(self.size) != 3 or any(int(s) < 1 for s in self.size):
            raise ConfigError(f"space.size: expected three positive integers, got {self.size}")
        if not self.spacing > 0:
            raise ConfigError(f"space.spacing: must be positive, got {self.spacing}")

    @property
    def field_of_view_mm(self) -> tuple[float, float, float]:
        return tuple(s * self.spacing for s in self.size)  # type: ignore[return-value]


@dataclass(frozen=True)
class AutoencoderConfig:
    """MONAI ``AutoencoderKL``: each level after the first halves every axis."""

    channels: tuple[int, ...] = (64, 128, 128, 128)
    num_res_blocks: int = 2
    latent_channels: int = 3
    norm_num_groups: int = 32
    kl_weight: float = 1e-6
    # Lesion voxels are a tiny fraction of a mask; weighting their L1 keeps small lesions from
    # being reconstructed as background.
    lesion_weight: float = 10.0
    # Training crops (voxels per axis; 0 = whole volume): the AE is fully convolutional, so it
    # learns from patches and still encodes whole volumes.
    train_patch: int = 0
    # With train_patch: the last this many training steps (all, if it is more than
    # train_autoencoder.steps) see whole volumes instead, so the GroupNorm statistics the model
    # ends with are those of the whole volumes it codes.
    whole_volume_steps: int = 0
    # Learning rate of those whole-volume steps (0: the schedule's). A cosine schedule is near 0
    # by then, too little to move the GroupNorm-dependent weights from the patches' statistics
    # to the whole volume's.
    whole_volume_lr: float = 0.0
    # Reconstructions are used clamped to [0, 1]: where the target sits on a bound (the zero
    # background, mask voxels), score the clamped output, so background only has to be ≤ 0.
    # SSIM punishes any residual background haze heavily (luminance term with C1 = 1e-4).
    clamped_l1: bool = False
    # Initial log-variance of the posterior (bias of the log-sigma head; 0 = MONAI's default
    # init, σ ≈ 1). With a KL weight this small the optimum is a narrow posterior anyway, but
    # σ ≈ 1 drowns the latent mean in sampling noise for the first hundreds of steps, so a short
    # run trains its decoder on noise and reconstructs blurred volumes.
    initial_log_variance: float = 0.0
    # Weight of a (1 − SSIM) term on image reconstructions. L1 alone converges to blurred edges
    # first; SSIM's structure term rewards edges directly, which is what short runs lack.
    ssim_weight: float = 0.0
    # Weight of a soft Dice loss on mask reconstructions (clamped to [0, 1], batch-wise so empty
    # masks count too). The weighted L1 spreads its pull over every voxel; Dice scores the
    # overlap that thresholding keeps, which is what decides a lesion's edge.
    mask_dice_weight: float = 0.0
    # Weight of a patch adversarial term on image reconstructions (MONAI's PatchDiscriminator,
    # least-squares PatchAdversarialLoss; 0 = off). L1 and SSIM are minimised by the average of
    # the plausible sharp images, which is blurred; the discriminator penalises that average.
    adversarial_weight: float = 0.0
    # Training step it is switched on at: a discriminator facing a random decoder only teaches
    # it noise, so the reconstruction terms warm the decoder up first.
    adversarial_start: int = 0
    discriminator_channels: int = 16  # of its first layer; each further layer doubles them
    discriminator_layers: int = 3

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class UNetConfig:
    """MONAI ``DiffusionModelUNet`` used for both the brain and the lesion denoiser."""

    channels: tuple[int, ...] = (128, 256, 256)
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_res_blocks: int = 1
    num_head_channels: int = 32
    norm_num_groups: int = 32

    @property
    def downsampling(self) -> int:
        """What each latent axis must be divisible by: every level after the first halves it."""
        return 2 ** (len(self.channels) - 1)


class Coupling(StrEnum):
    """What each U-Net sees of the other chain. USB is ``estimate``; the others are the
    ablations that show what the coupling buys (generation only: edits need ``estimate``)."""

    ESTIMATE = "estimate"  # lesion model sees x_t; brain model sees the lesion model's m0_hat
    NOISY = "noisy"  # brain model sees the noisy mask latent m_t instead of the estimate
    NONE = "none"  # two independent models: each sees zeros in place of the other chain


class PredictionType(StrEnum):
    """What the U-Nets output. Samplers and guidance always see ε̂ (converted from v̂)."""

    EPSILON = "epsilon"  # the noise (the paper)
    # v = sqrt(ab) ε - sqrt(1 - ab) z0 (Salimans & Ho 2022): near t = T the clean estimate is
    # -v̂ itself instead of ε̂'s error amplified by 1 / sqrt(ab_T) ≈ 160.
    V = "v"


@dataclass(frozen=True)
class DiffusionConfig:
    """DDPM noise schedule and paired-training choices (docs/method.md §3)."""

    timesteps: int = 1024
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    condition_dropout: float = 0.1  # brain model's lesion condition zeroed this often
    # m0_hat is clamped to ±this (scaled latent units) before it conditions the brain model:
    # near t = T the one-step estimate divides by sqrt(ab_t) ≈ 0.006 and is amplified noise.
    condition_clip: float = 5.0
    staged: bool = False  # lesion model first, then brain model against it (authors' code)
    coupling: Coupling = Coupling.ESTIMATE
    prediction: PredictionType = PredictionType.EPSILON
    # Min-SNR-γ loss weighting (Hang et al. 2023; 0: plain MSE, as the paper): timesteps whose
    # SNR exceeds γ (the nearly clean ones) count less, so a short run spends its gradient on
    # the noise levels that edits and generation start from.
    min_snr_gamma: float = 0.0
    # The authors' loss_weight_flag: the brain model's squared error weighted per latent element
    # by sigmoid(m0_hat), the lesion model's estimate it is conditioned on, so the loss counts
    # more where the mask latent says lesion.
    lesion_weighted_loss: bool = False


class SamplerKind(StrEnum):
    DDPM = "ddpm"  # ancestral: samples the posterior q(z_prev | z_t, z0_hat)
    DDIM = "ddim"  # deterministic at eta = 0
    DPMPP_2M = "dpmpp-2m"  # DPM-Solver++ (2M): second order, multistep, deterministic


class ConditionInput(StrEnum):
    """What the brain model sees of a given mask when a brain is generated for it (condition)."""

    LATENT = "latent"  # the mask's latent, clamped to ±condition_clip, at every step (the paper's)
    # the lesion model's one-step estimate from the mask latent noised to each step (seeing the
    # current brain): what the brain model sees in training at that noise level
    ESTIMATE = "estimate"


class PullTarget(StrEnum):
    """Where anatomy-consistency guidance pulls the next (noisy) latent."""

    CLEAN = "clean"  # toward the clean source latent, as the authors' code does
    NOISED = "noised"  # toward the source noised to the next step's level


class LesionMap(StrEnum):
    """The soft lesion map lesion-consistency guidance releases anatomy with."""

    POOLED = "pooled"  # AvgPool3d of the mask, brought to latent resolution (paper)
    LATENT = "latent"  # the clamped mask latent (authors' code)


class FindLesion(StrEnum):
    """How heal without a mask finds the lesion it removed (written as its mask.nii.gz)."""

    ANOMALY = "anomaly"  # |input − healed| over the intensity window, thresholded
    # the lesion chain sampled with the brain fixed to the input (the joint model as a
    # segmenter; what `lesion --propose` runs), decoded and thresholded
    SEGMENT = "segment"


@dataclass(frozen=True)
class GuidanceConfig:
    """Anatomy- and lesion-consistency guidance of edits (docs/method.md §5, ACG and LCG)."""

    anatomy: bool = True  # ACG on/off
    lesion: bool = True  # LCG on/off
    # ACG strength at the edit's first step: lam = exp(-alpha_t |x0_hat - x_src|), so a larger
    # alpha0 holds the anatomy *less* at a given distance from the source.
    alpha0: float = 20.0
    # The latent scale alpha0 is given for: 0, our latents (autoencoder mean × its stored
    # scale factor); 0.18215, the authors' (mean × 0.18215), in which their alpha0 = 20 is set.
    # alpha0 is converted by alpha0_scale / scale_factor, so the hold means what theirs means.
    alpha0_scale: float = 0.0
    # alpha0 of heal without a mask (0: alpha0). With no lesion map to release, ACG alone decides
    # how far the model may move anywhere, so it is chosen on its own.
    alpha0_without_mask: float = 0.0
    decay: float = 0.5
    lesion_scale: float = 1.0  # s: how fully anatomy is released inside the lesion
    kernel: int = 5  # AvgPool3d kernel (model-space voxels)
    dilation: int = 1  # mask dilation (model-space voxels) before pooling
    # Heal may release this many model-space voxels more: its pathological input carries the
    # lesion into the latent voxels around it (each one codes a block of the volume), which a
    # healthy input being given a lesion does not. Off in both presets (the tiny preset's
    # comment has the measurement).
    heal_extra_dilation: int = 0
    pull_target: PullTarget = PullTarget.CLEAN
    lesion_map: LesionMap = LesionMap.POOLED


@dataclass(frozen=True)
class SamplingConfig:
    """How the four tasks sample; every value can be changed per command."""

    sampler: SamplerKind = SamplerKind.DDIM
    steps: int = 50  # of the T training steps; 300 is the paper's
    eta: float = 0.0
    t_start_heal: int = 300  # edits noise the input to this step, then denoise
    t_start_lesion: int = 500
    # Timesteps an edit visits below its t_start: 0, the steps of the `steps` grid that lie
    # there (a 50-step grid gives heal 14 of them); k, every k-th timestep (1: all t_start of
    # them, the authors' 300 for heal and 500 for insertion).
    edit_stride: int = 0
    # Volumes of more model-space voxels than this are "large": encoded and decoded in slabs
    # (``Autoencoder.encode_streamed`` / ``decode_streamed``: the whole-volume result in less
    # memory). Peak RSS of whole-volume encode + decode with the paper autoencoder grows with
    # the voxel count: 0.99 GiB at 64³, 1.97 GiB at 96³, 7.33 GiB at 160³ (bench/memory.py's
    # whole mode), so past 2 M voxels (128³ is 2.1 M) it would pass 4 GiB, the memory goal for
    # a 160³ heal on an 8 GiB CPU. Below it the plain whole-volume pass runs: tiny (48³) and
    # base (96³) never stream.
    stream_voxels: int = 2_000_000
    # Large volumes only: edit a latent crop around the lesion instead of the whole latent —
    # faster, but an approximation (the U-Nets train on whole latents). bench/heal_160.py
    # (paper architecture, random weights, 300 guided steps) heals 160³ in 128 s / 3.5 GiB with
    # it against 723 s / 4.3 GiB whole; on the tiny demo checkpoint forced through it
    # (`bench/guidance.py --crop-context 1`, validation subjects; whole-latent edits in
    # brackets) the heal MAE ratio is 0.47 [0.31] and the inserted-lesion intensity ratio 0.73
    # [0.63].
    edit_crop: bool = False
    # The crop: the latent box where the pooled soft lesion map releases anatomy, grown by
    # crop_margin latent voxels (the decoder spreads a change a little past it) is where the
    # change is kept; crop_context more real neighbours (at least; rounded up to the U-Net's
    # multiple) are denoised around it. At 8× downsampling a 10 mm lesion keeps a 6³ box and
    # gets an 8³ crop (64³ voxels, 6% of 160³).
    crop_margin: int = 1
    crop_context: int = 1
    # Latent voxels decoded around the kept box so that it sees real neighbours, not zero
    # padding. Per-window GroupNorm statistics make any window decode approximate: healing four
    # cohort scans with the tiny autoencoder at 96³, the kept change was within 0.005–0.024 mean
    # abs (max 0.07–0.36; [0, 1] intensities) of the whole-volume change, closer than decoding
    # the whole volume by 32-voxel windows (0.007–0.052).
    decode_context: int = 2
    threshold: float = 0.5  # decoded mask → binary
    find_lesion: FindLesion = FindLesion.ANOMALY
    # find_lesion = anomaly: a voxel is lesion where |input − healed| exceeds this fraction of
    # the scan's intensity window (its [0.5, 99.5] percentiles inside the brain)
    anomaly_threshold: float = 0.2
    precision: Precision = Precision.FP32  # of the U-Nets while sampling (bf16/fp16 autocast)
    # Classifier-free guidance of the brain model on its mask condition in edits (heal,
    # lesion; 1 = off): eps = eps(zero condition) + scale · (eps(mask) − eps(zero condition)).
    # Training zeroes the condition 10% of the time, which is what makes the unconditioned
    # prediction available; both passes run as one batch.
    condition_scale: float = 1.0
    # The same guidance for brains sampled from pure noise (condition, healthy generation). An
    # edit starts from the input's anatomy; from noise a strong scale pulls the whole brain,
    # not just the lesion, away from the data.
    generation_condition_scale: float = 1.0
    condition_input: ConditionInput = ConditionInput.LATENT
    # torch.compile the U-Nets, replayed as CUDA graphs on a GPU, where a paper-scale step is
    # bound by kernel launches (bench/step.py on an H100: 2.7× per step). Compiling costs about
    # 30 s on that GPU (a minute and more on a CPU) once per process and again for new latent
    # shapes (crops around different lesions), so it pays over many steps or same-sized scans,
    # not for one edit.
    compile: bool = False
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)


@dataclass(frozen=True)
class TrainConfig:
    """One training run's optimisation settings."""

    steps: int = 100_000
    batch_size: int = 8
    lr: float = 1e-4
    adam_betas: tuple[float, ...] = (0.9, 0.999)
    warmup_steps: int = 0  # linear learning-rate warm-up from 0
    cosine_decay: bool = False  # after warm-up, cosine-anneal the learning rate to 0 at the end
    grad_accumulation: int = 1
    grad_clip: float = 1.0
    # Clip each top-level part of the model (each U-Net of the paired denoiser) to grad_clip on
    # its own, rather than one norm over all: one U-Net's large gradient then cannot shrink the
    # other's step.
    clip_per_model: bool = False
    # AdamW's decoupled weight decay (torch's default 0.01; the authors' code uses 0).
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    precision: Precision = Precision.FP32
    activation_checkpointing: bool = False
    val_every: int = 1000
    save_every: int = 1000


@dataclass(frozen=True)
class Config:
    """Everything an experiment needs; saved as ``config.yaml`` in every checkpoint."""

    preset: str = "paper"
    seed: int = 0
    space: ModelSpace = field(default_factory=ModelSpace)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train_autoencoder: TrainConfig = field(default_factory=TrainConfig)
    train_diffusion: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        down = self.autoencoder.downsampling
        for axis, n in enumerate(self.space.size):
            if n % down:
                raise ConfigError(
                    f"space.size: {n} (axis {axis}) is not divisible by the autoencoder's "
                    f"downsampling {down} (2 ** (len(autoencoder.channels) - 1))"
                )
        latent = self.space.size[0] // down
        unet_down = self.unet.downsampling
        if latent % unet_down:
            raise ConfigError(
                f"unet.channels: {len(self.unet.channels)} levels halve the {latent}³ latent "
                f"{len(self.unet.channels) - 1} times; {latent} is not divisible by {unet_down}"
            )
        if self.autoencoder.whole_volume_steps < 0:
            raise ConfigError("autoencoder.whole_volume_steps: must be 0 or more")
        if self.autoencoder.whole_volume_lr < 0:
            raise ConfigError("autoencoder.whole_volume_lr: must be 0 (the schedule's) or more")
        for key in ("adversarial_weight", "adversarial_start"):
            if getattr(self.autoencoder, key) < 0:
                raise ConfigError(f"autoencoder.{key}: must be 0 or more")
        if self.autoencoder.discriminator_channels < 1 or self.autoencoder.discriminator_layers < 1:
            raise ConfigError("autoencoder.discriminator_channels/_layers: must be 1 or more")
        if len(self.unet.attention_levels) != len(self.unet.channels):
            raise ConfigError("unet.attention_levels: needs one entry per unet.channels level")
        for name, channels in (("autoencoder", self.autoencoder), ("unet", self.unet)):
            bad = [c for c in channels.channels if c % channels.norm_num_groups]
            if bad:
                raise ConfigError(
                    f"{name}.channels: {bad} not divisible by {name}.norm_num_groups "
                    f"({channels.norm_num_groups})"
                )
        for name in ("train_autoencoder", "train_diffusion"):
            if getattr(self, name).weight_decay < 0:
                raise ConfigError(f"{name}.weight_decay: must be 0 or more")
        if self.diffusion.min_snr_gamma < 0:
            raise ConfigError("diffusion.min_snr_gamma: must be 0 (off) or more")
        if not 0 < self.diffusion.beta_start < self.diffusion.beta_end < 1:
            raise ConfigError("diffusion.beta_start/beta_end: need 0 < start < end < 1")
        T = self.diffusion.timesteps
        if not 1 <= self.sampling.steps <= T:
            raise ConfigError(f"sampling.steps: must be between 1 and {T} (diffusion.timesteps)")
        for key in ("t_start_heal", "t_start_lesion"):
            if not 0 < getattr(self.sampling, key) < T:
                raise ConfigError(f"sampling.{key}: must be between 1 and {T - 1}")
        if self.sampling.guidance.kernel < 1 or self.sampling.guidance.kernel % 2 == 0:
            raise ConfigError("sampling.guidance.kernel: must be an odd positive integer")
        for key in ("dilation", "heal_extra_dilation", "alpha0_scale", "alpha0_without_mask"):
            if getattr(self.sampling.guidance, key) < 0:
                raise ConfigError(f"sampling.guidance.{key}: must be 0 or more")
        stride = self.sampling.edit_stride
        if stride < 0 or stride > min(self.sampling.t_start_heal, self.sampling.t_start_lesion):
            raise ConfigError("sampling.edit_stride: must be 0 (the steps grid) or 1 to t_start")

    @property
    def latent_size(self) -> tuple[int, int, int]:
        down = self.autoencoder.downsampling
        return tuple(n // down for n in self.space.size)  # type: ignore[return-value]


PRESETS: dict[str, dict[str, Any]] = {
    # The published scale (the paper): 160³ → 20³×3 latents, U-Nets (128, 256, 256).
    # Edits as the authors run them: every timestep below t_start (300 guided steps for heal,
    # 500 for insertion), alpha0 = 20 in their latent units.
    "paper": {
        "preset": "paper",
        # The authors' training recipe (their train.yaml): Adam without weight decay, brain
        # loss weighted by the lesion estimate.
        "diffusion": {"lesion_weighted_loss": True},
        "train_diffusion": {"weight_decay": 0.0},
        "sampling": {"steps": 300, "edit_stride": 1, "guidance": {"alpha0_scale": 0.18215}},
    },
    # The model `make weights` trains and the repo ships (models/base): the rich built-in
    # cohort at 2 mm, where 96³ holds the whole MNI brain, within 150 minutes on 2 CPU cores.
    # The paper's 8× downsampling (four autoencoder levels) gives 12³ latents. Step costs on 2
    # cores: the (32, 64, 64, 64) autoencoder 0.74 s a 32³ patch and 20 s a whole 96³ volume,
    # the (64, 128, 128) U-Nets 1.3 s a batch of 8 latents. Sampling: tiny's (set below
    # PRESETS, with what base's validation split measured of it).
    "base": {
        "preset": "base",
        "space": {"size": (96, 96, 96), "spacing": 2.0},
        "autoencoder": {
            "channels": (32, 64, 64, 64),
            "num_res_blocks": 1,
            "latent_channels": 4,
            "norm_num_groups": 16,
            "train_patch": 32,
            # Whole volumes at the end, for GroupNorm statistics of the whole field of view
            # (see tiny); 48 of them are a quarter of the autoencoder's time. A 32³ patch is a
            # 27th of a 96³ volume: on whole volumes the patch-trained encoder's latents were
            # 100–5000× too large (KL 1e7–4e8 against 3e3 on patches), and the cosine
            # schedule's learning rate there (≈ 1e-6) could not move it; so these steps run at
            # their own rate.
            "whole_volume_steps": 48,
            "whole_volume_lr": 2e-4,
            "clamped_l1": True,
            "initial_log_variance": -8.0,
            "ssim_weight": 1.0,
            "mask_dice_weight": 0.15,
            "adversarial_weight": 0.03,
            "adversarial_start": 800,
        },
        "unet": {
            "channels": (64, 128, 128),
            "attention_levels": (False, False, True),
            "num_head_channels": 32,
            "norm_num_groups": 32,
        },
        "diffusion": {"prediction": "v", "min_snr_gamma": 5.0},
        "train_autoencoder": {
            "steps": 2448,
            "batch_size": 1,
            "lr": 1e-3,
            "adam_betas": (0.5, 0.9),
            "warmup_steps": 50,
            "cosine_decay": True,
            # Short, so that the weights it ends with are those of the whole-volume steps.
            "ema_decay": 0.95,
            # Validating the 30 whole validation volumes costs 7 minutes: once, at the end.
            "val_every": 2448,
            "save_every": 48,
        },
        # 1200 steps (about 26 minutes) keep the whole recipe within the 150-minute budget.
        "train_diffusion": {
            "steps": 1200,
            "batch_size": 8,
            "lr": 5e-4,
            "warmup_steps": 50,
            "ema_decay": 0.99,
            "val_every": 200,
            "save_every": 50,
        },
    },
    # Trains AE + both U-Nets on the built-in cohort within minutes on 2 CPU cores. 4 mm keeps
    # the whole MNI brain (≈145×181×155 mm) inside 48³; three AE levels give 12³ latents.
    "tiny": {
        "preset": "tiny",
        "space": {"size": (48, 48, 48), "spacing": 4.0},
        # (16, 32, 32) trains 3× faster than (32, 64, 64) on 2 cores, which is what fits the CPU
        # budget; fewer channels at full resolution, e.g. (8, 16, 32), are slower, not faster.
        # 32³ patches (a third of a 48³ volume's cost per step), then whole volumes for the
        # last 100 steps: GroupNorm statistics depend on the field of view, and a model trained
        # on crops only decodes whole volumes ≈ 0.18 too bright. `usbrain train-ae` on the demo
        # cohort (SSIM / mask Dice ≥ 5 mL, train / val / test): whole volumes, 340 steps, 367 s:
        # SSIM 0.896 / 0.895 / 0.887, Dice 0.83 / 0.87 / 0.77; 220 patch + 120 whole steps,
        # 263 s: 0.900 / 0.900 / 0.893, 0.82 / 0.88 / 0.77; 320 + 120, 222 s on a quieter
        # machine: 0.902 / 0.902 / 0.897, 0.82 / 0.90 / 0.79.
        # Measured at 250 steps (validation SSIM / PSNR): L1 only 0.801 / 23.0 dB; + SSIM term
        # 0.850; + 4 latent channels 0.857; + Adam betas (0.5, 0.9) 0.888 / 24.8 dB (300 steps:
        # 0.896 / 25.2 dB). KL weight 1e-8 instead of 1e-6 was worse (0.866), lr 3e-3 too (0.864).
        "autoencoder": {
            "channels": (16, 32, 32),
            "num_res_blocks": 1,
            "latent_channels": 4,
            "norm_num_groups": 8,
            "train_patch": 32,
            "whole_volume_steps": 100,
            "clamped_l1": True,
            "initial_log_variance": -8.0,
            "ssim_weight": 1.0,
            # Mask Dice on lesions ≥ 5 mL (train / val / test) and validation SSIM, 340 steps:
            # weighted L1 alone 0.71 / 0.85 / 0.69, SSIM 0.911; + Dice term 0.3: 0.86 / 0.90 /
            # 0.80, SSIM 0.898; 1.0: 0.83 / 0.86 / 0.75, SSIM 0.873; lesion weight 3 instead of
            # 10: 0.79 / 0.89 / 0.71, SSIM 0.907, lesions < 5 mL lost on train (Dice 0).
            "mask_dice_weight": 0.15,
        },
        # (16, 32, 32) U-Nets take 900 steps in the time (32, 64, 64) take 320 (≈ 4.6 min on 2
        # cores): the compute-bound 12³ step costs a third. On the `make demo` latents, min-SNR
        # loss as below for both (heal: `python bench/guidance.py --split val|test`; generated
        # pairs: a one-off probe over seeds 0–11, not a repo command): (32, 64, 64) × 320 heal
        # MAE ratio 0.41 / 0.60 (val / test), 5 of 12 generated pairs with a lesion, mostly
        # outside the brain; (16, 32, 32) × 900 (`make demo`'s checkpoint): 0.35 / 0.48, 8 of
        # 12 (`usbrain benchmark`), all inside. Without min-SNR, (16, 32, 32) × 1200 (7.2 min)
        # scored 0.36 / 0.47.
        "unet": {
            "channels": (16, 32, 32),
            "attention_levels": (False, False, True),
            "num_head_channels": 16,
            "norm_num_groups": 8,
        },
        # The 10-minute budget is split about evenly between the autoencoder, which limits
        # every task, and the denoisers (their validation loss ends far below half its initial
        # value: 0.31× and 0.29× after 900 steps). This machine's speed varies by a third from
        # run to run (the same 320 patch steps took 0.25 s and 0.39 s a step in two `make demo`
        # runs, whole training 10.4 and 10.9 min), so the step counts leave that margin: 320 +
        # 100 autoencoder steps and 900 denoiser steps (`make demo`'s report gives the time on
        # yours).
        "train_autoencoder": {
            "steps": 420,
            "batch_size": 1,
            "lr": 2e-3,
            # A shorter gradient memory than (0.9, 0.999) follows the fast-changing loss of a
            # short run (as GAN-style autoencoder recipes do): SSIM 0.857 → 0.888.
            "adam_betas": (0.5, 0.9),
            "warmup_steps": 20,
            "cosine_decay": True,
            "ema_decay": 0.95,
            "val_every": 100,
            "save_every": 100,
        },
        # v-prediction: with ε-prediction the 400-step denoisers' clean estimates near t = T are
        # their small ε error times 1 / sqrt(ab_T) ≈ 160 (relative error 780 at t = 1023 against
        # 0.08 for predicting the mean latent), and brains sampled from noise are not brains
        # (latent std 2–4× the data's). With v the same budget samples brain-like volumes
        # (brain volume 1900 mL as the cohort's, latent std 1.02). These diagnostics came from a
        # one-off script, not a repo command; `usbrain benchmark` shows the effect (FID).
        # Min-SNR-5 weighting, same (16, 32, 32) × 900 run otherwise: heal MAE ratio 0.45 →
        # 0.35 (val) and 0.54 → 0.48 (test), inserted-lesion intensity ratio 0.17 → 0.22
        # (test), generated pairs with a lesion 7 → 8 of 12. (An earlier version that scaled
        # the weights to average 1 per batch, not over all timesteps: 0.32 / 0.47, 10 of 12.)
        # Training on the healthy twins of the lesioned scans as extra (brain, empty mask)
        # pairs did not help ((32, 64, 64) × 320: heal 0.48 / 0.56 against 0.47 / 0.57, and no
        # generated lesion at all; a one-off script, not a repo option).
        # The authors' training switches, each alone on the demo's latents (`bash
        # bench/train_options.sh`; validation heal MAE ratio / inserted-lesion intensity ratio /
        # brain model's validation loss): as set 0.31 / 0.63 / 0.297; weight_decay 0 0.31 / 0.63
        # / 0.298; clip_per_model 0.34 / 0.53 / 0.300; lesion_weighted_loss 0.35 / 0.65 / 0.297.
        # None is better on both edits, so none is switched on here.
        "diffusion": {"prediction": "v", "min_snr_gamma": 5.0},
        "train_diffusion": {
            "steps": 900,
            "batch_size": 8,
            "lr": 5e-4,
            "ema_decay": 0.99,
            "val_every": 100,
            "save_every": 100,
        },
        # Sampling settings chosen with bench/guidance.py on the 3 validation subjects of the
        # `make demo` checkpoint (test subjects in brackets, not used to choose). At this scale
        # the paper's alpha0 = 20 releases nearly everything; alpha0 = 1 holds the anatomy
        # outside the lesion. Classifier-free guidance on the mask condition is what makes an
        # inserted lesion appear: intensity ratio 0.98 → 0.84 [0.87 → 0.20] from scale 1 to 3,
        # PSNR outside 48 [30] dB; 3 is the smallest scale reaching ≤ 0.85 on validation. Heal
        # barely depended on it (MAE ratio 0.85–0.90 [0.62]); filling the lesion with the
        # decoded edit rather than adding a change (tasks/heal.py, step 4) took it to 0.49
        # [0.55].
        # Fewer DDIM steps make both edits stronger (heal MAE ratio / inserted-lesion intensity
        # ratio / its PSNR outside, validation): 50 steps 0.49 / 0.84 / 48 dB, 30: 0.48 / 0.79 /
        # 45, 20: 0.46 / 0.74 / 42, 10: 0.46 / 0.64 / 37; 20 are used. From pure noise guidance
        # stays off (generation_condition_scale): on an earlier v checkpoint, conditioned brains
        # covered their lesion 0.85 (median) at scale 3 against 0.997 at 1 (a one-off script
        # calling `usbrain.tasks.condition` on the test masks).
        # Releasing one voxel more for heal only (guidance.heal_extra_dilation=1), on the 7
        # held-out subjects: it helped the deep white-matter lesions (in-lesion MAE ratio 0.86 →
        # 0.80, 0.66 → 0.59, 0.50 → 0.41) and hurt three of four cortical strokes (0.55 → 0.69,
        # 0.59 → 0.66, 0.41 → 0.43; the fourth 0.47 → 0.38). Medians 0.465 → 0.427 (validation),
        # 0.517 → 0.455 (the 13 training subjects), 0.573 → 0.622 (test), PSNR outside 45 → 38
        # dB. With no consistent gain it stays off (bench/guidance.py --split val|train|test).
        # These were chosen on the earlier (32, 64, 64) × 320 checkpoint. Re-checked on
        # (16, 32, 32) × 900 (plain MSE): t_start_heal 700 / 900, steps 10 / 30, condition_scale
        # 2 / 5, alpha0 0.5 / 2, kernel 3 / 7, dilation 2 and dpmpp-2m put validation heal
        # between 0.41 and 0.54 (0.45 as set), and the best of them scored 0.53 on test against
        # 0.54 as set; they stay.
        # condition_input = estimate, chosen on the 16 validation and training masks (the
        # `make demo` checkpoint; a one-off script calling `usbrain.tasks.condition`): lesion
        # voxels inside the generated brain rose for every mask below 1 (0.73 → 0.80, 0.76 →
        # 0.83, 0.58 → 0.83, 0.93 → 0.96; mean 0.94 → 0.96), at the cost of fainter lesions
        # (median gap to the real scan's lesion contrast 0.13 → 0.14 for strokes, 0.24 → 0.30
        # for white-matter lesions, which neither input draws well). Test masks: 0.92 → 0.93.
        "sampling": {
            "steps": 20,
            "t_start_heal": 800,
            "t_start_lesion": 700,
            "condition_scale": 3.0,
            "condition_input": "estimate",
            # Heal without a mask (bench/heal_without_mask.py on the 3 validation subjects;
            # in-lesion MAE ratio / PSNR outside / best anomaly Dice): alpha0 1: 0.88 / 39.3 dB /
            # 0.20 at threshold 0.1; 1.5: 0.78 / 34.7 dB / 0.45 at 0.15; 2: 0.71 / 31.6 dB / 0.37
            # at 0.2; 3: 0.62 / 28.1 dB / 0.17. The lesion chain as a segmenter: Dice 0 in all.
            "anomaly_threshold": 0.15,
            "guidance": {"alpha0": 1.0, "alpha0_without_mask": 1.5},
        },
    },
}

# base samples as tiny does (its sampling block, not a copy): on base's validation split
# (`python bench/guidance.py --demo runs/base --pipeline models/base --split val`, 25 subjects
# with a lesion, seed 0; medians) it heals to an in-lesion MAE ratio of 0.317 with 39.6 dB PSNR
# outside and inserts lesions at 0.338 of white matter with 33.8 dB outside; alpha0 = 2 heals a
# little deeper (0.304) but keeps less outside (33.9 / 32.1 dB).
PRESETS["base"]["sampling"] = PRESETS["tiny"]["sampling"]


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` as the type ``annotation`` names, or a ConfigError naming ``key``."""
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(annotation, value, key)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        try:
            return annotation(value)
        except ValueError:
            choices = ", ".join(annotation)
            raise ConfigError(f"{key}: {value!r} is not one of {choices}") from None
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-8 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {annotation!r} for {key}")  # a bug, not user error


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(known))})")
    values = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    return cls(**values)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_override(item: str) -> dict[str, Any]:
    """``a.b=3`` → ``{"a": {"b": 3}}`` (the value parsed as YAML: numbers, lists, booleans)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. train_diffusion.steps=100")
    key, text = item.split("=", 1)
    value: Any = yaml.safe_load(text)
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (lists for tuples, strings for enums), as written to YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, StrEnum):
            return str(v)
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def load_config(
    preset: str = "tiny", path: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Build a :class:`Config`: preset, then the YAML file at ``path``, then ``overrides``.

    >>> load_config("tiny", overrides=["train_diffusion.steps=50"]).train_diffusion.steps
    50
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys")
        raw = loaded
        preset = raw.get("preset", preset)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    merged = _merge(PRESETS[preset], raw)
    for item in overrides or []:
        merged = _merge(merged, _parse_override(item))
    try:
        return _build(Config, merged)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML (not atomic by itself: called inside an atomic folder)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def space_preset(name: str) -> ModelSpace:
    """The model space of preset ``name``."""
    return load_config(name).space

"""The configuration schema: every setting an experiment has, typed, with its reason.

The dataclasses' defaults are the paper's values; the presets (``usbrain/configs/*.yaml``, read by
:mod:`usbrain.config.presets`) spell every key out. An impossible value or shape fails in
``__post_init__``, before any training starts, with a message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

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
    # healthy input being given a lesion does not. Off in every preset (configs/tiny.yaml has
    # the measurement).
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
    # Classifier-free guidance of the brain model on its mask condition in edits (1 = off):
    # eps = eps(zero condition) + scale · (eps(mask) − eps(zero condition)). Training zeroes the
    # condition 10% of the time, which is what makes the unconditioned prediction available;
    # both passes run as one batch. Heal and insertion each have their own: heal's condition is
    # the empty mask, insertion's the lesion, and a scale that makes a lesion appear in one
    # model can turn it into a void in another (the presets' comments give the measurements).
    condition_scale_heal: float = 1.0
    condition_scale_lesion: float = 1.0
    # Insertion's scale where the lesion fills a latent voxel; condition_scale_lesion is the one
    # where it covers little of it (and outside the lesion), linear in the lesion's share in
    # between: a lesion smaller than a latent voxel needs a stronger pull to be drawn at all, a
    # large one drawn with that pull overshoots into a void. Equal to condition_scale_lesion:
    # one scale everywhere.
    condition_scale_lesion_filled: float = 1.0
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

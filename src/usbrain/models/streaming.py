"""MONAI ``AutoencoderKL`` run on a large volume in slabs, computing what the whole volume gives.

Tiling a volume (sliding windows) changes the result: every GroupNorm then normalises each
window by its own statistics. Here the network runs block by block over the whole tensor, but
never builds more than one slab of a block's intermediates at a time:

- a GroupNorm's statistics are summed over all slabs (float64) before any slab is normalised,
  so they are the whole tensor's;
- a convolution's output slab is computed from its input slab and the rows of halo its kernel
  needs, zero-padded only at the volume's faces, as the whole-volume convolution pads.

Slabs run along the first spatial axis (D). What lives in memory is a block's input and its
output (a residual block's second convolution overwrites its first's output in place; an
upsampling into a narrowing residual block never holds the upsampled tensor), not the
activations of the whole block: a 160³ encode + decode with the paper autoencoder stays far below
whole-volume coding (bench/memory.py). Attention blocks are not supported (usbrain's
autoencoders have none).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, UpSample
from monai.networks.nets.autoencoderkl import AEKLDownsample, AEKLResBlock, AutoencoderKL
from torch import nn

# Elements of one slab of a block's widest tensor (≈ 64 MiB of float32): a few of these live at
# once beside the block's input and output, so they stay small next to a 160³ activation (1 GiB at
# 64 channels); smaller slabs recompute more halo rows.
SLAB_ELEMENTS = 16 * 2**20


def _rows(x: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, int, int]:
    """``x[:, :, start:stop]`` clipped to the volume, and how many zero rows are missing before
    and after it."""
    n = x.shape[2]
    lo, hi = max(start, 0), min(stop, n)
    return x[:, :, lo:hi], lo - start, stop - hi


def _slab_rows(x: torch.Tensor, rows: int | None, channels: int) -> int:
    """Rows per slab: ``rows`` if given, else what keeps a slab of ``channels`` channels (the
    widest a block builds per row of ``x``) near :data:`SLAB_ELEMENTS`."""
    if rows is not None:
        return rows
    per_row = x.shape[0] * channels * x.shape[3] * x.shape[4]
    return max(4, SLAB_ELEMENTS // max(per_row, 1))


def _widest(block: nn.Module, x: torch.Tensor) -> int:
    """The most channels per input row a block's slab holds (×4 for an upsampling block,
    whose output rows are four times as wide)."""
    channels = [m.out_channels for m in block.modules() if isinstance(m, nn.Conv3d)]
    widest = max([x.shape[1], *channels])
    return 4 * widest if isinstance(block, UpSample) else widest


def _conv3d(module: nn.Module) -> nn.Conv3d:
    conv = module.conv if isinstance(module, Convolution) else module
    if not isinstance(conv, nn.Conv3d):
        raise TypeError(f"expected a 3D convolution, got {type(module).__name__}")
    return conv


class RowSource:
    """Rows ``[start, stop)`` (inside the volume) of a tensor of ``length`` rows that need not
    exist as a whole: ``fn`` computes them (e.g. an upsampling block's output)."""

    def __init__(
        self, fn: Callable[[int, int], torch.Tensor], length: int, voxels_per_item: int
    ) -> None:
        self.fn, self.length, self.voxels_per_item = fn, length, voxels_per_item

    @classmethod
    def of(cls, x: torch.Tensor) -> RowSource:
        return cls(lambda start, stop: x[:, :, start:stop], x.shape[2], x[0].numel())

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        return self.fn(start, stop)


class GroupNormStats:
    """Whole-tensor GroupNorm of ``x`` (B, C, D, H, W), applied slab by slab.

    ``apply(slab)`` equals ``norm(x)`` on the rows of ``slab``; statistics are accumulated in
    float64 over slabs of ``rows`` rows.
    """

    def __init__(self, norm: nn.GroupNorm, x: torch.Tensor | RowSource, rows: int) -> None:
        self.norm = norm
        source = x if isinstance(x, RowSource) else RowSource.of(x)
        total = squares = None
        for start in range(0, source.length, rows):
            part = source(start, min(start + rows, source.length))
            part = part.reshape(part.shape[0], norm.num_groups, -1).double()
            total = part.sum(-1) if total is None else total + part.sum(-1)
            squares = part.square().sum(-1) if squares is None else squares + part.square().sum(-1)
        count = source.voxels_per_item / norm.num_groups
        mean = total / count
        var = (squares / count - mean.square()).clamp_min(0.0)
        self.mean = mean.float()[:, :, None]
        self.rstd = torch.rsqrt(var + norm.eps).float()[:, :, None]

    def apply(self, slab: torch.Tensor) -> torch.Tensor:
        """The normalised rows of ``slab``: a new tensor (in-place steps keep one copy)."""
        b, c = slab.shape[:2]
        g = self.norm.num_groups
        out = slab.reshape(b, g, -1).sub(self.mean).mul_(self.rstd).view(slab.shape)
        if self.norm.affine:
            shape = (1, c, 1, 1, 1)
            out = out.mul_(self.norm.weight.view(shape)).add_(self.norm.bias.view(shape))
        return out


def _norm_silu(stats: GroupNormStats) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda slab: F.silu(stats.apply(slab), inplace=True)


def conv3x3(
    x: torch.Tensor,
    conv: nn.Conv3d,
    pre: Callable[[torch.Tensor], torch.Tensor] | None,
    rows: int,
    out: torch.Tensor | None = None,
    accumulate: bool = False,
) -> torch.Tensor:
    """``conv(pre(x))`` for a stride-1 convolution of odd kernel with "same" padding, slab by
    slab; ``pre`` (elementwise, e.g. norm + SiLU) runs before the zero padding, as in the
    network. ``out`` may be ``x`` itself (same channels): the rows a later slab still needs
    are kept aside before they are overwritten. ``accumulate`` adds to ``out``."""
    k = conv.kernel_size[0]
    r = k // 2
    n = x.shape[2]
    if out is None:
        out = x.new_empty((x.shape[0], conv.out_channels, *x.shape[2:]))
    kept = None  # rows of x above the current slab, saved before they were overwritten
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        part, before, after = _rows(x, start, stop + r)
        if start > 0:
            above = kept if out is x else x[:, :, max(start - r, 0) : start]
            part = torch.cat([above, part], dim=2)
        else:
            before = r
        act = pre(part) if pre is not None else part
        act = F.pad(act, (0, 0, 0, 0, before, after))
        result = F.conv3d(act, conv.weight, conv.bias, padding=(0, r, r))
        if out is x:
            kept = x[:, :, max(stop - r, 0) : stop].clone()
        if accumulate:
            out[:, :, start:stop] += result
        else:
            out[:, :, start:stop] = result
    return out


def pointwise(
    x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], channels: int, rows: int
) -> torch.Tensor:
    """``fn`` (acting on each voxel alone: 1×1 convolution, norm) over slabs of ``x``."""
    out = x.new_empty((x.shape[0], channels, *x.shape[2:]))
    for start in range(0, x.shape[2], rows):
        out[:, :, start : start + rows] = fn(x[:, :, start : start + rows])
    return out


def res_block(block: AEKLResBlock, x: torch.Tensor, rows: int) -> torch.Tensor:
    """MONAI's ``AEKLResBlock``: ``nin(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))``."""
    h = conv3x3(x, _conv3d(block.conv1), _norm_silu(GroupNormStats(block.norm1, x, rows)), rows)
    pre = _norm_silu(GroupNormStats(block.norm2, h, rows))
    same = block.in_channels == block.out_channels
    # conv2 overwrites h in place; the shortcut reads x, which stays until the end
    out = conv3x3(h, _conv3d(block.conv2), pre, rows, out=h)
    shortcut = block.nin_shortcut
    for start in range(0, x.shape[2], rows):
        part = x[:, :, start : start + rows]
        out[:, :, start : start + rows] += part if same else shortcut(part)
    return out


def downsample(block: AEKLDownsample, x: torch.Tensor, rows: int) -> torch.Tensor:
    """MONAI's ``AEKLDownsample``: pad one zero row after every axis, 3³ convolution of stride
    2. Output row ``o`` reads input rows ``2o … 2o + 2``."""
    conv = _conv3d(block.conv)
    n_out = x.shape[2] // 2
    h, w = (x.shape[3] + 1 - 3) // 2 + 1, (x.shape[4] + 1 - 3) // 2 + 1
    out = x.new_empty((x.shape[0], conv.out_channels, n_out, h, w))
    step = max(1, rows // 2)
    for start in range(0, n_out, step):
        stop = min(start + step, n_out)
        part, _, after = _rows(x, 2 * start, 2 * stop + 1)
        part = F.pad(part, (0, 1, 0, 1, 0, after))
        out[:, :, start:stop] = F.conv3d(part, conv.weight, conv.bias, stride=2)
    return out


def _check_upsample(block: UpSample) -> nn.Conv3d:
    interp = block.upsample_non_trainable
    factor = interp.scale_factor
    factors = tuple(factor) if isinstance(factor, tuple | list) else (factor,) * 3
    if interp.mode != "nearest" or any(float(f) != 2.0 for f in factors):
        raise NotImplementedError(f"only nearest ×2 upsampling streams, got {interp.mode}")
    return _conv3d(block.postconv)


def upsampled_rows(block: UpSample, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows ``[start, stop)`` of MONAI's non-trainable ``UpSample`` (nearest ×2, then its 3³
    post-convolution) of ``x``, from the input rows they cover, upsampled with a row of halo."""
    conv = _check_upsample(block)
    n_out = 2 * x.shape[2]
    lo, hi = (start - 1) // 2, (stop + 1 + 1) // 2  # low-res rows covering start-1 … stop
    part, before, _ = _rows(x, lo, hi)
    up = F.interpolate(part, scale_factor=2.0, mode="nearest")
    first = 2 * (lo + before)  # full-res index of up's first row
    up = up[:, :, max(start - 1, 0) - first : stop + 1 - first]
    pad_before = 1 if start == 0 else 0
    pad_after = 1 if stop == n_out else 0
    up = F.pad(up, (0, 0, 0, 0, pad_before, pad_after))
    return F.conv3d(up, conv.weight, conv.bias, padding=(0, 1, 1))


def upsampled(block: UpSample, x: torch.Tensor) -> RowSource:
    """The output of ``block`` on ``x`` as rows computed on demand."""
    n = 2 * x.shape[2]
    channels = _check_upsample(block).out_channels
    return RowSource(
        lambda a, b: upsampled_rows(block, x, a, b), n, channels * n * 4 * x[0, 0, 0].numel()
    )


def upsample(block: UpSample, x: torch.Tensor, rows: int) -> torch.Tensor:
    """MONAI's non-trainable ``UpSample`` over ``x``, slab by slab."""
    conv = _check_upsample(block)
    n_out = 2 * x.shape[2]
    out = x.new_empty((x.shape[0], conv.out_channels, n_out, 2 * x.shape[3], 2 * x.shape[4]))
    step = max(2, rows // 2 * 2)
    for start in range(0, n_out, step):
        stop = min(start + step, n_out)
        out[:, :, start:stop] = upsampled_rows(block, x, start, stop)
    return out


def upsample_narrowing_block(
    up: UpSample, block: AEKLResBlock, x: torch.Tensor, rows: int
) -> torch.Tensor:
    """``block(up(x))`` for a residual block with fewer output than input channels (the
    decoder's last level: 128 → 64 channels at full resolution), without ever holding
    ``up(x)``, the decoder's largest tensor: its rows are computed once for ``norm1``'s
    statistics and once more for ``conv1`` and the shortcut."""
    source = upsampled(up, x)
    n = source.length
    stats = GroupNormStats(block.norm1, source, rows)
    conv1 = _conv3d(block.conv1)
    b, c = x.shape[0], block.out_channels
    shape = (b, c, n, 2 * x.shape[3], 2 * x.shape[4])
    h, out = x.new_empty(shape), x.new_empty(shape)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        lo, hi = max(start - 1, 0), min(stop + 1, n)
        u = source(lo, hi)
        act = F.pad(
            F.silu(stats.apply(u), inplace=True), (0, 0, 0, 0, lo - start + 1, stop + 1 - hi)
        )
        h[:, :, start:stop] = F.conv3d(act, conv1.weight, conv1.bias, padding=(0, 1, 1))
        out[:, :, start:stop] = block.nin_shortcut(u[:, :, start - lo : stop - lo])
    pre = _norm_silu(GroupNormStats(block.norm2, h, rows))
    return conv3x3(h, _conv3d(block.conv2), pre, rows, out=out, accumulate=True)


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, rows: int | None) -> torch.Tensor:
    """An ``Encoder`` / ``Decoder``'s blocks in order, each over the whole tensor in slabs."""
    blocks = list(blocks)
    i = 0
    while i < len(blocks):
        block = blocks[i]
        i += 1
        n = _slab_rows(x, rows, _widest(block, x))
        after = blocks[i] if i < len(blocks) else None
        if (
            isinstance(block, UpSample)
            and isinstance(after, AEKLResBlock)
            and after.out_channels < after.in_channels
        ):
            x = upsample_narrowing_block(block, after, x, n)
            i += 1
        elif isinstance(block, AEKLResBlock):
            x = res_block(block, x, n)
        elif isinstance(block, AEKLDownsample):
            x = downsample(block, x, n)
        elif isinstance(block, UpSample):
            x = upsample(block, x, n)
        elif isinstance(block, nn.GroupNorm):
            stats = GroupNormStats(block, x, n)
            x = pointwise(x, stats.apply, x.shape[1], n)
        elif isinstance(block, Convolution):
            conv = _conv3d(block)
            if conv.kernel_size[0] == 1:
                x = pointwise(x, block, conv.out_channels, n)
            else:
                x = conv3x3(x, conv, None, n)
        else:
            raise NotImplementedError(f"{type(block).__name__} does not stream (attention?)")
    return x


@torch.no_grad()
def encode_mean(net: AutoencoderKL, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """``net.encode(x)[0]`` (the posterior mean), computed in slabs."""
    h = run_blocks(net.encoder.blocks, x, rows)
    mu = net.quant_conv_mu
    channels = _conv3d(mu).out_channels
    return pointwise(h, mu, channels, _slab_rows(h, rows, h.shape[1]))


@torch.no_grad()
def decode(net: AutoencoderKL, z: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """``net.decode(z)``, computed in slabs."""
    post = net.post_quant_conv
    channels = _conv3d(post).out_channels
    h = pointwise(z, post, channels, _slab_rows(z, rows, channels))
    return run_blocks(net.decoder.blocks, h, rows)

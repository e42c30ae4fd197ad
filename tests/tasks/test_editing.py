from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.conftest import lesion_mask, micro_config, phantom_brain
from tests.tasks.conftest import LESION
from usbrain.config import ModelSpace
from usbrain.data.masks import dilated
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import preprocess, resample
from usbrain.data.scan import Scan
from usbrain.models.coder import LatentCoder, grow
from usbrain.pipeline import Pipeline
from usbrain.tasks import editing
from usbrain.tasks import lesion as lesion_task
from usbrain.tasks.editing import BLEND_DILATION, crop_box, released_box, write_back
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion

SPACE = ModelSpace(size=(16, 16, 16), spacing=6.0)


def _scan() -> Scan:
    affine = np.diag([-1.8, -2.2, 2.6, 1.0])  # LPS, anisotropic
    return Scan.load(Volume(phantom_brain(), affine), SPACE)


def test_zero_change_returns_the_input_voxel_for_voxel():
    scan = _scan()
    out = write_back(scan, np.zeros(SPACE.size, np.float32))
    assert out.shape == scan.native.shape and out.dtype == np.float32
    assert np.array_equal(out, scan.native.data)


def test_blend_confines_the_change_and_the_background_stays_background():
    scan = _scan()
    image = scan.native
    lesion_m = np.zeros(SPACE.size, np.uint8)
    lesion_m[7:9, 7:9, 7:9] = 1
    delta = np.full(SPACE.size, 0.2, np.float32)
    free = write_back(scan, delta)
    blended = write_back(scan, delta, blend_mask=lesion_m)
    background = image.data == 0
    assert np.array_equal(free[background], image.data[background])
    changed = blended != image.data
    assert changed.any() and changed.sum() < (free != image.data).sum()
    # Far from the (dilated) lesion nothing changes at all.
    g = scan.geometry
    near = resample(
        dilated(lesion_m, BLEND_DILATION + 1).astype(np.float32), g.model, g.native, image.shape
    )
    far = near == 0
    assert far.sum() > 0.7 * far.size  # the lesion grown by 3 voxels: 8³ of the 16³ grid
    assert np.array_equal(blended[far], image.data[far])
    # The change is in native intensity units: 0.2 of the model window.
    inside = (free - image.data)[20, 22, 18]
    assert abs(inside - 0.2 * (g.intensity_high - g.intensity_low)) < 1e-3 * g.intensity_high


def test_released_box_is_the_soft_maps_support_grown_and_clipped():
    soft = torch.zeros(1, 1, 8, 8, 8)
    assert released_box(soft, 1) is None
    soft[0, 0, 2:4, 5, 0:3] = 0.3
    assert released_box(soft, 0) == (slice(2, 4), slice(5, 6), slice(0, 3))
    assert released_box(soft, 2) == (slice(0, 6), slice(3, 8), slice(0, 5))
    assert grow((slice(0, 8),) * 3, 1, (8, 8, 8)) == (slice(0, 8),) * 3


def _heal_large(monkeypatch, seed: int = 0):
    """Heal the lesioned phantom with a 32³ micro pipeline (16³ latents) counted as large;
    returns the result, the geometry and what :meth:`LatentCoder.decode_in_box` got and gave
    (crop latents), with the whole-crop change of the same latents and the shapes encoded."""
    torch.manual_seed(seed)
    pipe = Pipeline.build(micro_config("space.size=[32,32,32]", "space.spacing=3.0"))
    pipe.autoencoder.eval()
    pipe.denoiser.eval()
    seen = {}
    region_decode = LatentCoder.decode_in_box

    def spy(coder, latents, box, context):
        x_edit, x_src = latents
        seen.update(box=box, x_edit=x_edit, x_src=x_src, coder=coder)
        whole = pipe.autoencoder.decode(x_edit) - pipe.autoencoder.decode(x_src)
        seen["whole"] = whole[0, 0].numpy()
        decoded = region_decode(coder, latents, box, context)
        seen["region"] = decoded[0] - decoded[1]
        return decoded

    monkeypatch.setattr(LatentCoder, "decode_in_box", spy)
    seen["encoded"] = []
    encode = LatentCoder.encode

    def encode_spy(coder, volume):
        seen["encoded"].append(volume.shape)
        return encode(coder, volume)

    monkeypatch.setattr(LatentCoder, "encode", encode_spy)
    sick, mask = phantom_brain(), lesion_mask(**LESION)
    sick[mask > 0] = 300.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image = Volume(sick, affine)
    # 32³ counts as large; the decoded windows (up to 13 latent voxels a side here) do not.
    cropped = replace(pipe.config.sampling, edit_crop=True, stream_voxels=30**3)
    with torch.inference_mode():
        result = heal(
            pipe, Scan.load(image, pipe.config.space, Volume(mask, affine)), cropped, seed=seed
        )
    return result, preprocess(image, pipe.config.space).geometry, seen


@pytest.mark.parametrize("seed", [0, 1])
def test_large_edits_run_in_a_crop_keep_the_lesion_box_only_and_the_input_outside(
    monkeypatch, seed
):
    result, g, seen = _heal_large(monkeypatch, seed)
    crop = [slice(*c) for c in result.info["edited_latent_crop"]]
    # Of the scan only the crop is encoded, and it is smaller than the volume; the empty mask's
    # latent is the whole volume's, encoded once per pipeline.
    crop_shape = tuple(2 * (c.stop - c.start) for c in crop)  # 2× downsampling
    assert seen["encoded"] == [crop_shape, (32, 32, 32)] and np.prod(crop_shape) < 32**3
    box = seen["box"]  # in the crop's latent voxels
    assert result.info["decoded_latent_box"] == [
        [b.start + c.start, b.stop + c.start] for b, c in zip(box, crop, strict=True)
    ]
    assert all(b.stop - b.start < c.stop - c.start for b, c in zip(box, crop, strict=True))
    inside = tuple(slice(2 * b.start, 2 * b.stop) for b in box)
    region, whole = seen["region"], seen["whole"]
    outside = np.ones(region.shape, bool)
    outside[inside] = False
    assert not region[outside].any()
    # Inside the box the change is the whole-volume one up to the window's GroupNorm statistics
    # and zero-padded edge. Measured with these random weights (seeds 0–3): max error 0.19–0.27
    # and mean 0.020–0.029 of the largest change in the box.
    scale = np.abs(whole[inside]).max()
    err = np.abs(region[inside] - whole[inside])
    assert err.max() < 0.4 * scale and err.mean() < 0.05 * scale
    # Native voxels that only see model voxels outside the box are the input's, exactly.
    box_m = np.zeros((32, 32, 32), np.float32)
    box_m[tuple(slice(2 * a, 2 * b) for a, b in result.info["decoded_latent_box"])] = 1.0
    far = resample(box_m, g.model, g.native, result.image.shape) == 0
    assert far.mean() > 0.5
    assert np.array_equal(result.image.data[far], result.source.data[far])
    assert not np.array_equal(result.image.data, result.source.data)


@pytest.mark.parametrize("task", ["heal", "lesion"])
def test_a_large_volume_is_edited_whole_and_gives_the_small_volume_result(monkeypatch, task):
    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config("space.size=[32,32,32]", "space.spacing=3.0"))
    pipe.autoencoder.eval()
    with torch.no_grad():  # MONAI zero-initialises the output layers: no edit would move
        for p in pipe.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    healthy, mask = phantom_brain(), lesion_mask(**LESION)
    sick = healthy.copy()
    sick[mask > 0] = 300.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image = Volume(sick if task == "heal" else healthy, affine)
    run = heal if task == "heal" else lesion

    scan = Scan.load(image, pipe.config.space, Volume(mask, affine))

    def edited(sampling):
        with torch.inference_mode():
            return run(pipe, scan, sampling, seed=2)

    small = edited(pipe.config.sampling)
    calls = []
    for name in ("encode_streamed", "decode_streamed"):
        method = getattr(pipe.autoencoder, name)
        spy = lambda *a, m=method, n=name, **k: (calls.append(n), m(*a, **k))[1]  # noqa: E731
        monkeypatch.setattr(pipe.autoencoder, name, spy)
    large = edited(replace(pipe.config.sampling, stream_voxels=30**3))  # 32³ coded in slabs
    assert "encode_streamed" in calls and "decode_streamed" in calls
    assert "edited_latent_crop" not in large.info  # the whole latent, no crop
    changed = np.abs(small.image.data - image.data).max()
    assert changed > 1.0
    np.testing.assert_allclose(large.image.data, small.image.data, atol=1e-3 * changed)


def test_a_window_reaching_the_whole_latent_gives_the_whole_volume_change_in_the_box(monkeypatch):
    _, _, seen = _heal_large(monkeypatch)
    monkeypatch.undo()  # the real decode_in_box, with a context reaching the whole latent
    edited, source = seen["coder"].decode_in_box([seen["x_edit"], seen["x_src"]], seen["box"], 16)
    region = edited - source
    inside = tuple(slice(2 * b.start, 2 * b.stop) for b in seen["box"])
    np.testing.assert_allclose(region[inside], seen["whole"][inside], atol=1e-5)
    region[inside] = 0
    assert not region.any()


def test_crop_box_grows_to_the_unet_multiple_inside_the_latent():
    kept = (slice(5, 8), slice(0, 2), slice(10, 12))
    assert crop_box(kept, (12, 12, 12), 4, 2) == (slice(2, 10), slice(0, 8), slice(4, 12))
    assert crop_box(kept, (12, 12, 10), 4, 4) == (slice(0, 12), slice(0, 12), slice(0, 10))


def test_edit_region_is_the_whole_volume_unless_large_and_smaller():
    pipe = Pipeline.build(micro_config("space.size=[32,32,32]", "space.spacing=3.0"))
    sampling = replace(pipe.config.sampling, edit_crop=True)
    lesion_m = np.zeros((32, 32, 32), np.uint8)
    lesion_m[4:6, 20:22, 10:12] = 1

    def crop_of(mask, s):
        return editing.edit_region(pipe, pipe.coder(s), mask, s)

    assert crop_of(lesion_m, sampling).crop is None  # 32³ is not large
    assert not crop_of(lesion_m, sampling).cropping
    large = replace(sampling, stream_voxels=30**3)
    region = crop_of(lesion_m, large)
    crop = region.crop
    assert region.cropping and crop is not None and all(c.stop - c.start < 16 for c in crop)
    latent = tuple(slice(a // 2, -(-b // 2)) for a, b in ((4, 6), (20, 22), (10, 12)))
    inner = zip(crop, latent, strict=True)
    assert all(c.start <= la.start and la.stop <= c.stop for c, la in inner)
    assert crop_of(np.zeros_like(lesion_m), large).crop is None
    assert crop_of(lesion_m, replace(large, edit_crop=False)).crop is None
    lesion_m[:] = 1
    assert crop_of(lesion_m, large).crop is None  # the crop would be everything


def test_lesion_mask_helper_is_inside_the_phantom():
    assert (phantom_brain()[lesion_mask() > 0] > 0).all()


def test_mni_centre_constant_matches_the_template():
    from usbrain.data.cohort import load_template
    from usbrain.data.geometry import MNI_BRAIN_CENTRE_MM

    assert np.abs(load_template().centre - MNI_BRAIN_CENTRE_MM).max() < 0.5


def test_heal_puts_the_decoded_edit_inside_a_known_lesion_insertion_adds_a_change(monkeypatch):
    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config("space.size=[32,32,32]", "space.spacing=3.0"))
    pipe.autoencoder.eval()
    # An edit that changes nothing: the chain starts from and returns the source latent.
    monkeypatch.setattr(editing, "q_sample", lambda schedule, x, t, noise: x)
    monkeypatch.setattr(editing, "sample_brain", lambda net, sampler, c, start, *a, **k: start)
    sick, mask = phantom_brain(), lesion_mask(**LESION)
    sick[mask > 0] = 300.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    scan = Scan.load(Volume(sick, affine), pipe.config.space, Volume(mask, affine))
    sampling = pipe.config.sampling
    with torch.inference_mode():
        inserted = lesion(pipe, scan, sampling).info
        healed = heal(pipe, scan, sampling)
        coder = pipe.coder(sampling)
        recon = coder.decode(coder.encode(scan.image)).clip(0, 1)
    assert inserted["mean_abs_change_in_lesion_model"] == 0  # a change, and there is none
    # Inside the lesion heal's model-space output is the clamped reconstruction, not the input.
    inside = scan.lesion > 0
    expected = np.abs(recon - scan.image)[inside].mean()
    assert expected > 0.01
    assert healed.info["mean_abs_change_in_lesion_model"] == pytest.approx(expected, rel=1e-5)
    assert healed.info["mean_abs_change_outside_model"] == 0
    assert not np.array_equal(healed.image.data, scan.native.data)


@pytest.mark.parametrize("propose", [False, True])
def test_large_lesion_insertion_runs_in_a_crop_with_a_mask_or_a_proposal(monkeypatch, propose):
    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config("space.size=[32,32,32]", "space.spacing=3.0"))
    pipe.autoencoder.eval()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image, mask = Volume(phantom_brain(), affine), Volume(lesion_mask(**LESION), affine)
    if propose:  # a fixed small proposal, so the test does not depend on the random lesion chain
        proposal = np.zeros((32, 32, 32), np.uint8)
        proposal[14:18, 14:18, 14:18] = 1
        monkeypatch.setattr(lesion_task, "propose_lesion", lambda *a, **k: proposal)
    scan = Scan.load(image, pipe.config.space, None if propose else mask)
    with torch.inference_mode():
        cropped = replace(pipe.config.sampling, edit_crop=True, stream_voxels=30**3)
        result = lesion(pipe, scan, cropped, seed=0)
    crop = result.info["edited_latent_crop"]
    assert all(b - a < 16 for a, b in crop)
    box = np.zeros((32, 32, 32), np.float32)
    box[tuple(slice(2 * a, 2 * b) for a, b in result.info["decoded_latent_box"])] = 1.0
    g = preprocess(image, pipe.config.space).geometry
    far = resample(box, g.model, g.native, image.shape) == 0
    assert far.mean() > 0.5
    assert np.array_equal(result.image.data[far], image.data[far])
    assert not np.array_equal(result.image.data, image.data)


def guidance_scales(pipe, task, monkeypatch, **sampling) -> tuple[Scan, list]:
    """The phantom's scan and the classifier-free guidance scales ``task`` (heal or lesion)
    passes to the brain chain under ``sampling`` (the chain itself skipped)."""
    scales = []

    def record(net, sampler, condition, start, *args, condition_scale, **kwargs):
        scales.append(condition_scale)
        return start

    monkeypatch.setattr(editing, "sample_brain", record)
    healthy, mask = phantom_brain(), lesion_mask(**LESION)
    image = Volume(healthy, np.diag([2.0, 2.0, 2.0, 1.0]))
    scan = Scan.load(image, pipe.config.space, Volume(mask, image.affine))
    (heal if task == "heal" else lesion)(pipe, scan, replace(pipe.config.sampling, **sampling))
    return scan, scales


@pytest.mark.parametrize("task", ["heal", "lesion"])
def test_heal_and_insertion_each_guide_with_their_own_condition_scale(
    task, pipeline_dir, monkeypatch
):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    one_scale = {"condition_scale_lesion": 1.5, "condition_scale_lesion_filled": 1.5}
    _, scales = guidance_scales(pipe, task, monkeypatch, condition_scale_heal=2.5, **one_scale)
    assert scales == [2.5 if task == "heal" else 1.5]


def test_insertion_guides_by_the_lesions_share_of_each_latent_voxel(pipeline_dir, monkeypatch):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    scan, (scale,) = guidance_scales(
        pipe, "lesion", monkeypatch, condition_scale_lesion=3.0, condition_scale_lesion_filled=1.0
    )
    f = pipe.config.autoencoder.downsampling
    occupancy = torch.nn.functional.avg_pool3d(
        torch.as_tensor(scan.lesion, dtype=torch.float32)[None, None], f
    )
    assert scale.shape == occupancy.shape
    torch.testing.assert_close(scale, 3.0 - 2.0 * occupancy)
    assert scale.max() == 3.0 and scale.min() < 3.0  # partial outside the lesion, lower inside


@pytest.mark.parametrize("task", ["heal", "lesion"])
def test_edits_condition_the_brain_model_on_a_clamped_mask_latent(task, pipeline_dir, monkeypatch):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    clip = 0.01
    diffusion = replace(pipe.config.diffusion, condition_clip=clip)
    pipe.config = replace(pipe.config, diffusion=diffusion)
    seen = []
    real_sample_brain = editing.sample_brain

    def spy(denoiser, sampler, condition, *args, **kwargs):
        seen.append(condition)
        return real_sample_brain(denoiser, sampler, condition, *args, **kwargs)

    monkeypatch.setattr(editing, "sample_brain", spy)
    healthy, mask = phantom_brain(), lesion_mask(**LESION)
    sick = healthy.copy()
    sick[mask > 0] = 300.0
    image = Volume(sick if task == "heal" else healthy, np.diag([2.0, 2.0, 2.0, 1.0]))
    run = heal if task == "heal" else lesion
    scan = Scan.load(image, pipe.config.space, Volume(mask, image.affine))
    run(pipe, scan, pipe.config.sampling)
    (condition,) = seen
    assert condition.abs().max() <= clip
    # the clamp bit: the latent it comes from (empty mask for heal, the mask itself for
    # insertion) reaches beyond ±clip
    mask_m = np.zeros(pipe.config.space.size, np.float32)
    if task == "lesion":
        mask_m[6:10, 6:10, 6:10] = 1.0
    assert pipe.coder(pipe.config.sampling).encode(mask_m).abs().max() > clip

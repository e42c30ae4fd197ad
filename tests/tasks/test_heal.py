"""Heal without a mask, several samples, and the authors' edit step counts."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.tasks.test_commands import RESULT_FILES, files, run
from usbrain.config import FindLesion, load_config
from usbrain.data.nifti import load_image, load_mask
from usbrain.data.scan import Scan
from usbrain.diffusion.schedule import NoiseSchedule
from usbrain.errors import ConfigError
from usbrain.pipeline import Pipeline
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion


def _heal_with_mask(pipeline_dir, scans) -> list:
    return [
        "heal",
        "--checkpoint",
        pipeline_dir,
        "--image",
        scans["image"],
        "--mask",
        scans["mask"],
    ]


def _moving(pipeline_dir) -> Pipeline:
    pipe = Pipeline.from_pretrained(pipeline_dir)
    with torch.no_grad():  # MONAI zero-initialises the output layers: no edit would move
        g = torch.Generator().manual_seed(0)
        for p in pipe.denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return pipe


@pytest.mark.parametrize("task", ["heal", "lesion"])
def test_samples_average_the_single_seed_runs_and_give_their_std(task, pipeline_dir, scans):
    pipe = _moving(pipeline_dir)
    run_task = heal if task == "heal" else lesion
    image = load_image(scans["image" if task == "heal" else "healthy"])
    scan = Scan.load(image, pipe.config.space, load_mask(scans["mask"]))
    sampling = pipe.config.sampling
    singles = [run_task(pipe, scan, sampling, seed=s).image.data for s in (5, 6, 7, 8)]
    assert not np.array_equal(singles[0], singles[1])
    four = run_task(pipe, scan, sampling, seed=5, samples=4)
    stack = np.stack(singles).astype(np.float64)
    np.testing.assert_allclose(four.image.data, stack.mean(0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(four.maps["std"], stack.std(0), rtol=0, atol=1e-4)
    assert four.info["seeds"] == [5, 6, 7, 8] and four.maps["std"].dtype == np.float32
    one = run_task(pipe, scan, sampling, seed=5, samples=1)
    assert np.array_equal(one.image.data, singles[0]) and one.maps == {}


def test_cli_samples_write_std_and_one_sample_is_the_plain_run(
    pipeline_dir, scans, tmp_path, capsys
):
    args = _heal_with_mask(pipeline_dir, scans)
    assert run(capsys, *args, "--out", tmp_path / "plain")[0] == 0
    assert run(capsys, *args, "--samples", "1", "--out", tmp_path / "one")[0] == 0
    for name in RESULT_FILES:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    assert run(capsys, *args, "--samples", "3", "--out", tmp_path / "three")[0] == 0
    assert files(tmp_path / "three") == sorted([*RESULT_FILES, "std.nii.gz"])
    for bad in ("0", "-2"):
        code, err = run(capsys, *args, "--samples", bad, "--out", tmp_path / f"bad{bad}")
        assert code == 2 and "--samples" in err and "Traceback" not in err
        assert not (tmp_path / f"bad{bad}").exists()


def test_heal_without_a_mask_writes_the_anomaly_and_the_lesion_it_found(
    pipeline_dir, scans, tmp_path, capsys
):
    out = tmp_path / "found"
    args = ["heal", "--checkpoint", pipeline_dir, "--image", scans["image"], "--out", out]
    assert run(capsys, *args, "--set", "anomaly_threshold=0.01")[0] == 0
    assert files(out) == sorted([*RESULT_FILES, "anomaly.nii.gz"])
    given = nib.load(scans["image"])
    healed, anomaly = nib.load(out / "image.nii.gz"), nib.load(out / "anomaly.nii.gz")
    assert anomaly.shape == given.shape and np.array_equal(anomaly.affine, given.affine)
    assert anomaly.get_data_dtype() == np.float32
    expected = np.abs(np.asarray(given.dataobj, np.float32) - np.asarray(healed.dataobj))
    np.testing.assert_allclose(np.asarray(anomaly.dataobj), expected, atol=1e-3)
    record = json.loads((out / "usbrain.json").read_text())
    assert record["with_mask"] is False and record["lesion_found_by"] == "anomaly"
    found = np.asarray(nib.load(out / "mask.nii.gz").dataobj)
    assert record["lesion_voxels"] == int(found.sum())
    code, err = run(capsys, *args[:-1], tmp_path / "blend", "--blend")
    assert code == 2 and "--blend needs --mask" in err and not (tmp_path / "blend").exists()


def test_heal_without_a_mask_finds_the_lesion_by_anomaly_or_by_the_lesion_chain(
    pipeline_dir, scans
):
    pipe = _moving(pipeline_dir)
    image = load_image(scans["image"])
    scan = Scan.load(image, pipe.config.space)
    base = pipe.config.sampling
    by_anomaly = heal(pipe, scan, replace(base, anomaly_threshold=0.0), seed=1)
    relative = by_anomaly.maps["anomaly"] > 0
    assert by_anomaly.mask.data.sum() == np.count_nonzero(relative & (image.data > 0))
    strict = heal(pipe, scan, replace(base, anomaly_threshold=10.0), seed=1)
    assert not strict.mask.data.any()
    assert np.array_equal(strict.image.data, by_anomaly.image.data)  # only the mask differs
    segment = replace(base, find_lesion=FindLesion.SEGMENT, threshold=-1e9)
    by_chain = heal(pipe, scan, segment, seed=1)
    assert by_chain.info["lesion_found_by"] == "segment"
    assert by_chain.mask.data.shape == image.shape and by_chain.mask.data.any()

    # its own alpha0: 0 means alpha0's; another value moves it differently
    def healed_with(alpha0_without_mask: float) -> np.ndarray:
        g = replace(base.guidance, alpha0_without_mask=alpha0_without_mask)
        return heal(pipe, scan, replace(base, guidance=g), seed=1).image.data

    unset = healed_with(0.0)
    assert np.array_equal(unset, healed_with(base.guidance.alpha0))
    assert not np.array_equal(unset, healed_with(base.guidance.alpha0 * 3 + 1))
    # ACG alone: without LCG nothing is released, so with a mask given the edit differs
    with_mask = heal(
        pipe, Scan.load(image, pipe.config.space, load_mask(scans["mask"])), base, seed=1
    )
    assert not np.array_equal(with_mask.image.data, by_anomaly.image.data)


def test_the_paper_preset_edits_visit_every_timestep_below_t_start():
    config = load_config("paper")
    # Only the schedule matters to the sampler: no need to build the paper's networks.
    pipe = SimpleNamespace(schedule=NoiseSchedule.from_config(config.diffusion))
    s = config.sampling
    heal_steps = Pipeline.sampler(pipe, s, s.t_start_heal).timesteps
    lesion_steps = Pipeline.sampler(pipe, s, s.t_start_lesion).timesteps
    assert (len(heal_steps), len(lesion_steps)) == (300, 500)
    assert heal_steps[0] == 299 and heal_steps[-1] == 0
    # the generation grid (the tiny preset's way) takes far fewer
    tiny = load_config("tiny").sampling
    assert len(Pipeline.sampler(pipe, tiny, tiny.t_start_heal).timesteps) < 20
    with pytest.raises(ConfigError):
        load_config("tiny", overrides=["sampling.edit_stride=-1"])


def test_edit_stride_reaches_the_sidecar(pipeline_dir, scans, tmp_path, capsys):
    args = _heal_with_mask(pipeline_dir, scans)
    assert run(capsys, *args, "--set", "edit_stride=1", "--out", tmp_path / "h")[0] == 0
    record = json.loads((tmp_path / "h" / "usbrain.json").read_text())
    t_start = record["parameters"]["t_start_heal"]
    assert record["steps_taken"] == t_start and record["parameters"]["edit_stride"] == 1


def _heal(pipe, scans, dilation: int, extra: int) -> np.ndarray:
    s = replace(pipe.config.sampling, steps=4)
    s = replace(s, guidance=replace(s.guidance, dilation=dilation, heal_extra_dilation=extra))
    with torch.inference_mode():
        scan = Scan.load(load_image(scans["image"]), pipe.config.space, load_mask(scans["mask"]))
        return heal(pipe, scan, s).image.data


def test_heal_releases_its_extra_dilation_on_top_of_the_shared_one(pipeline_dir, scans):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    one_more = _heal(pipe, scans, dilation=1, extra=1)
    assert np.array_equal(one_more, _heal(pipe, scans, dilation=2, extra=0))
    assert not np.array_equal(one_more, _heal(pipe, scans, dilation=1, extra=0))


def test_heal_without_a_mask_refuses_a_scan_the_model_grid_cannot_hold(
    pipeline_dir, tmp_path, capsys
):
    from tests.conftest import phantom_brain, write

    huge = write(tmp_path / "huge.nii.gz", phantom_brain(), np.diag([20.0, 20.0, 20.0, 1.0]))
    empty = write(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), np.float32))
    for scan, message in ((huge, "falls outside the model's"), (empty, "all zeros")):
        out = tmp_path / "out"
        code, err = run(capsys, "heal", "--checkpoint", pipeline_dir, "--image", scan, "--out", out)
        assert code == 2 and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and not out.exists()

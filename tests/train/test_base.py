from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import micro_config
from usbrain.errors import InputError
from usbrain.pipeline import Pipeline
from usbrain.train import base
from usbrain.train.distributed import World

SHORT = (
    "train_autoencoder.steps=4",
    "train_autoencoder.val_every=4",
    "train_autoencoder.save_every=2",
    "autoencoder.adversarial_weight=0.05",
    "autoencoder.adversarial_start=2",
    "autoencoder.discriminator_channels=4",
    "autoencoder.discriminator_layers=2",
    "train_diffusion.steps=4",
    "train_diffusion.batch_size=2",
    "train_diffusion.val_every=4",
    "train_diffusion.save_every=2",
)


class Killed(Exception):
    pass


def _train(out, **kwargs):
    return base.train_base(
        out,
        World(),
        config=micro_config(*SHORT),
        subjects=12,
        cohort_size=16,
        progress=False,
        **kwargs,
    )


def test_a_killed_run_continues_where_it_stopped_and_exports_half_precision(tmp_path, monkeypatch):
    out = tmp_path / "base"
    train_paired = base.train_paired

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(base, "train_paired", killed)
    with pytest.raises(Killed):
        _train(out)
    assert "diffusion" in json.loads((out / "timings.json").read_text())  # time kept on a kill
    ae_weights = (out / "autoencoder" / "checkpoint" / "ema.safetensors").read_bytes()
    monkeypatch.setattr(base, "train_paired", train_paired)

    def no_retraining(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(base, "train_autoencoder", no_retraining)
    monkeypatch.setattr(base, "write_cohort", no_retraining)
    pipeline = _train(out, export=tmp_path / "models" / "base")
    assert (out / "autoencoder" / "checkpoint" / "ema.safetensors").read_bytes() == ae_weights
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {"cohort", "prepare", "autoencoder", "encode", "diffusion"}

    shipped = Pipeline.from_pretrained(tmp_path / "models" / "base")
    card = (tmp_path / "models" / "base" / "README.md").read_text()
    assert "make weights" in card and "SHA256" in card and "PSNR" in card
    sha = (tmp_path / "models" / "base" / "SHA256").read_text().strip()
    assert sha == shipped.weights_sha256  # what every result's sidecar records
    trained = Pipeline.from_pretrained(pipeline)
    assert (
        json.loads((tmp_path / "models" / "base" / "meta.json").read_text())["weights_dtype"]
        == "float16"
    )
    for a, b in ((shipped.denoiser, trained.denoiser), (shipped.autoencoder, trained.autoencoder)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert x.dtype == y.dtype == torch.float32, name  # computed in float32
            torch.testing.assert_close(x, y.half().float(), rtol=0, atol=0)


def test_a_run_of_another_recipe_is_refused(tmp_path):
    out = tmp_path / "base"
    out.mkdir()
    (out / "recipe.json").write_text(json.dumps({"preset": "paper"}))
    with pytest.raises(InputError, match="another recipe"):
        _train(out)


def _stage(run, folder):
    """The kept form of ``run``'s finished autoencoder (as models/base-stages holds it)."""
    import shutil

    folder.mkdir()
    checkpoint = run / "autoencoder" / "checkpoint"
    for name in ("config.yaml", "meta.json", "ema.safetensors"):
        shutil.copy(checkpoint / name, folder / name)
    shutil.copy(run / "recipe.json", folder / "recipe.json")
    (folder / "timings.json").write_text(json.dumps({"cohort": 1.0, "autoencoder": 42.0}))
    rows = (run / "autoencoder" / "metrics.jsonl").read_text().splitlines()
    (folder / "last_validation.json").write_text([r for r in rows if "val/psnr" in r][-1])
    return folder


def _kept_stage(tmp_path, monkeypatch):
    """A run killed after its autoencoder stage, and that stage in its kept form."""
    first = tmp_path / "first"
    monkeypatch.setattr(base, "train_paired", lambda *a, **k: (_ for _ in ()).throw(Killed))
    with pytest.raises(Killed):
        _train(first)
    monkeypatch.undo()
    return first, _stage(first, tmp_path / "stage")


def test_a_kept_autoencoder_stage_continues_the_recipe_without_retraining(tmp_path, monkeypatch):
    first, stage = _kept_stage(tmp_path, monkeypatch)

    def no_training(*args, **kwargs):
        raise AssertionError("the autoencoder was trained again")

    monkeypatch.setattr(base, "train_autoencoder", no_training)
    second = tmp_path / "second"
    pipeline = _train(second, autoencoder=stage, export=tmp_path / "export")
    ema = "autoencoder/checkpoint/ema.safetensors"
    assert (second / ema).read_bytes() == (first / ema).read_bytes()
    latents = "latents/latents.safetensors"
    assert (second / latents).read_bytes() == (first / latents).read_bytes()
    assert json.loads((second / "timings.json").read_text())["autoencoder"] == 42.0
    assert Pipeline.from_pretrained(pipeline).autoencoder is not None
    assert "PSNR" in (tmp_path / "export" / "README.md").read_text()


def test_a_kept_stage_of_another_recipe_or_a_broken_one_is_refused(tmp_path, monkeypatch):
    _, stage = _kept_stage(tmp_path, monkeypatch)
    with pytest.raises(InputError, match="another recipe"):
        base.train_base(
            tmp_path / "other",
            World(),
            config=micro_config(*SHORT),
            subjects=10,
            cohort_size=16,
            progress=False,
            autoencoder=stage,
        )
    (stage / "ema.safetensors").write_bytes(b"not weights")
    with pytest.raises(InputError, match="corrupt or truncated"):
        _train(tmp_path / "broken", autoencoder=stage)
    (stage / "meta.json").unlink()
    with pytest.raises(InputError, match=r"missing meta\.json"):
        _train(tmp_path / "broken2", autoencoder=stage)

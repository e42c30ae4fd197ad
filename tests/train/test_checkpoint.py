from __future__ import annotations

import errno

import pytest
import safetensors.torch
import torch

from tests.conftest import micro_config
from usbrain.errors import InputError
from usbrain.models.denoiser import PairedDenoiser
from usbrain.train.checkpoint import load_checkpoint, save_checkpoint
from usbrain.weights import load_weights


def make(tmp_path, step=3):
    config = micro_config()
    model = PairedDenoiser(config.unet, 3)
    opt = torch.optim.AdamW(model.parameters())
    path = save_checkpoint(
        tmp_path / "ck", config, "diffusion", step, model, model, {"optimizer": opt.state_dict()}
    )
    return config, model, path


def test_round_trip(tmp_path):
    config, model, path = make(tmp_path)
    ck = load_checkpoint(path, kind="diffusion")
    assert ck.config == config and ck.meta["step"] == 3 and ck.state["step"] == 3
    assert ck.meta["torch_version"] == torch.__version__
    fresh = PairedDenoiser(config.unet, 3)
    load_weights(fresh, ck.model, str(path))
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_wrong_kind_and_architecture(tmp_path):
    _, _, path = make(tmp_path)
    with pytest.raises(InputError, match="is a 'diffusion' checkpoint, expected 'autoencoder'"):
        load_checkpoint(path, kind="autoencoder")
    ck = load_checkpoint(path)
    other = PairedDenoiser(micro_config("unet.channels=[8,16]").unet, 3)
    with pytest.raises(InputError, match="weights do not fit this architecture"):
        load_weights(other, ck.model, str(path))


def test_truncated_weights_are_refused(tmp_path):
    _, _, path = make(tmp_path)
    file = path / "model.safetensors"
    file.write_bytes(file.read_bytes()[:1000])
    with pytest.raises(InputError, match="corrupt or truncated weights"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):  # would run code when unpickled
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    _, _, path = make(tmp_path)
    torch.save({"step": 1, "evil": Payload()}, path / "state.pt")
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_missing_files_and_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"missing config\.yaml"):
        load_checkpoint(tmp_path / "empty")


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    config, model, path = make(tmp_path, step=3)
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, config, "diffusion", 4, model, model, {})
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert load_checkpoint(path).meta["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no partial folder left

"""Weight files: safetensors with the umask's modes, corrupt files and misfits named
(usbrain.weights)."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from torch import nn

from usbrain.errors import InputError
from usbrain.weights import load_weights, read_weights, save_weights


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_weights_round_trip_with_the_modes_the_umask_gives(tmp_path, umask, mode):
    net = nn.Linear(3, 2)
    old = os.umask(umask)
    try:
        save_weights(net, tmp_path / "w.safetensors", torch.float16)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == mode
    weights = read_weights(tmp_path / "w.safetensors")
    assert weights["weight"].dtype == torch.float16
    other = nn.Linear(3, 2)
    load_weights(other, weights, "w")
    torch.testing.assert_close(other.weight, net.weight.half().float())


def test_a_corrupt_file_and_a_misfit_are_named(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    with pytest.raises(InputError, match=r"bad\.safetensors: corrupt or truncated"):
        read_weights(tmp_path / "bad.safetensors")
    save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
    with pytest.raises(InputError, match="ckpt: weights do not fit"):
        load_weights(nn.Linear(4, 2), read_weights(tmp_path / "w.safetensors"), "ckpt")

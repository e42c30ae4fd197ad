"""Distribution scores of generated and conditioned brains (micro pipeline, random weights)."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import micro_config
from usbrain.evaluate.features import HDBETEncoder, extract_features, hdbet_encoder
from usbrain.evaluate.generation import (
    conditional_scores,
    first_sample,
    generation_scores,
    pair_scores,
)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = tmp_path_factory.mktemp("features") / "hdbet.pt"
    torch.manual_seed(0)
    torch.save(HDBETEncoder().state_dict(), path)
    return hdbet_encoder(path, size=32)


def _real(n: int, shape) -> torch.Tensor:
    return torch.rand(n, 1, *shape, generator=torch.Generator().manual_seed(1))


def test_generation_scores_measure_memorisation_against_the_training_scans(network):
    from usbrain.pipeline import Pipeline

    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config())
    real = _real(4, pipe.config.space.size)
    train_features = extract_features(network, real)
    scores = generation_scores(pipe, real, network, seed=0, train_features=train_features)
    memo = scores["memorisation"]  # the held-out scans are the training scans here: distance 0
    assert memo["held_out_to_train"] == pytest.approx(0.0, abs=1e-3)
    assert memo["closer_than_held_out"] == 0.0 and memo["generated_to_train"] > 0
    assert "memorisation" not in generation_scores(pipe, real, network, seed=0)


def test_benchmark_seeds_draw_disjoint_samples(monkeypatch):
    from usbrain.evaluate import generation
    from usbrain.pipeline import Pipeline

    drawn: dict[int, set[int]] = {}

    def record(pipe, n, sampling, start):
        drawn[len(drawn)] = set(range(start, start + n))
        return []

    monkeypatch.setattr(generation, "generate", record)
    monkeypatch.setattr(generation, "lesion_statistics", lambda results: {})
    pipe = Pipeline.build(micro_config())
    for seed in (0, 1, 2):
        pair_scores(pipe, 8, seed)
    assert all(len(drawn[i]) == 8 for i in drawn)
    assert not (drawn[0] & drawn[1]) and not (drawn[1] & drawn[2]) and not (drawn[0] & drawn[2])
    assert first_sample(0, 8) == 0  # seed 0 keeps the samples it always drew


def test_conditional_scores_put_copies_of_the_reference_half_at_distance_zero(network):
    real = _real(6, (24, 24, 24))
    copies = conditional_scores(real, real[0::2], network)  # the half real-vs-X is measured on
    assert copies["fid"]["real_vs_usb"] == pytest.approx(0.0, abs=1e-6)
    assert copies["fid"]["real_vs_real"] > 0.0
    assert (copies["n_real"], copies["n_conditioned"]) == (3, 3)
    noise = conditional_scores(real, torch.zeros(2, 1, 24, 24, 24), network)
    assert noise["fid"]["real_vs_usb"] > 0.0 and noise["n_conditioned"] == 2
    assert set(noise) >= {"fid", "mmd", "ms_ssim_diversity", "sharpness", "feature_network"}

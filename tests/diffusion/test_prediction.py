from __future__ import annotations

import torch

from tests.conftest import micro_config
from usbrain.config import PredictionType
from usbrain.diffusion.paired import PairedObjective
from usbrain.diffusion.prediction import (
    NoisePredictor,
    eps_from_prediction,
    min_snr_weights,
    prediction_target,
)
from usbrain.diffusion.schedule import NoiseSchedule, q_sample, x0_from_eps
from usbrain.models.denoiser import PairedDenoiser

S = NoiseSchedule.linear(1024, 1e-4, 2e-2)
T = torch.tensor([0, 500, 1023])


def latents(seed: int) -> torch.Tensor:
    return torch.randn(3, 2, 4, 4, 4, generator=torch.Generator().manual_seed(seed))


def test_v_target_is_the_closed_form():
    z0, eps = latents(0), latents(1)
    ab = S.alphas_cumprod[T].float().reshape(-1, 1, 1, 1, 1)
    expected = ab.sqrt() * eps - (1 - ab).sqrt() * z0
    torch.testing.assert_close(prediction_target(PredictionType.V, S, z0, T, eps), expected)
    assert prediction_target(PredictionType.EPSILON, S, z0, T, eps) is eps


def test_the_true_v_gives_back_the_true_noise_and_clean_latent():
    z0, eps = latents(0), latents(1)
    zt = q_sample(S, z0, T, eps)
    eps_hat = eps_from_prediction(PredictionType.V, S, zt, T, v_target_of(z0, eps))
    torch.testing.assert_close(eps_hat, eps, atol=1e-5, rtol=0)
    # at t = T - 1 the clean estimate divides by sqrt(ab) ≈ 0.006: still within 1e-3
    torch.testing.assert_close(x0_from_eps(S, zt, T, eps_hat), z0, atol=1e-3, rtol=0)


def v_target_of(z0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return prediction_target(PredictionType.V, S, z0, T, eps)


def test_v_error_is_not_amplified_in_the_clean_estimate_near_t_max():
    """The reason for v: the same output error costs ε-prediction ~1/sqrt(ab_T) in z0_hat."""
    z0, eps, error = latents(0), latents(1), 0.01 * latents(2)
    t = torch.full((3,), 1023)
    zt = q_sample(S, z0, t, eps)
    v = prediction_target(PredictionType.V, S, z0, t, eps)
    from_v = x0_from_eps(S, zt, t, eps_from_prediction(PredictionType.V, S, zt, t, v + error))
    from_eps = x0_from_eps(S, zt, t, eps + error)
    assert (from_v - z0).abs().max() < 0.05
    assert (from_eps - z0).abs().max() > 1.0


class Fixed:
    """Raw outputs set by hand."""

    def __init__(self, out: torch.Tensor) -> None:
        self.out = out

    def predict_lesion(self, m_t, t, x_t):
        return self.out

    def predict_brain(self, x_t, t, m0_hat):
        return 2 * self.out


def test_noise_predictor_converts_only_v_outputs():
    zt, out = latents(0), latents(1)
    eps_net = NoisePredictor(Fixed(out), S, PredictionType.EPSILON)
    assert torch.equal(eps_net.eps_lesion(zt, T, zt), out)
    assert torch.equal(eps_net.eps_brain(zt, T, zt), 2 * out)
    v_net = NoisePredictor(Fixed(out), S, PredictionType.V)
    ab = S.alphas_cumprod[T].float().reshape(-1, 1, 1, 1, 1)
    torch.testing.assert_close(v_net.eps_lesion(zt, T, zt), ab.sqrt() * out + (1 - ab).sqrt() * zt)
    torch.testing.assert_close(
        v_net.eps_brain(zt, T, zt), ab.sqrt() * 2 * out + (1 - ab).sqrt() * zt
    )


def _random_denoiser() -> PairedDenoiser:
    """Micro U-Nets with seeded N(0, 0.1) weights: MONAI zero-initialises the output layers,
    which would make every prediction (and loss) trivial."""
    torch.manual_seed(0)
    denoiser = PairedDenoiser(micro_config().unet, 2)
    with torch.no_grad():
        for p in denoiser.parameters():
            p.normal_(0, 0.1)
    return denoiser


def test_v_objective_regresses_v_and_conditions_on_the_converted_estimate():
    denoiser = _random_denoiser()
    obj = PairedObjective(denoiser, S, clip=5.0, prediction=PredictionType.V)
    x0, m0, eps_x, eps_m = latents(0), latents(1), latents(2), latents(3)
    out = obj(x0, m0, T, eps_x, eps_m, torch.ones(3))
    x_t, m_t = q_sample(S, x0, T, eps_x), q_sample(S, m0, T, eps_m)
    v_m_hat = denoiser.predict_lesion(m_t, T, x_t)
    eps_m_hat = eps_from_prediction(PredictionType.V, S, m_t, T, v_m_hat)
    m0_hat = x0_from_eps(S, m_t, T, eps_m_hat).clamp(-5, 5)
    v_x_hat = denoiser.predict_brain(x_t, T, m0_hat)
    v_m, v_x = v_target_of(m0, eps_m), v_target_of(x0, eps_x)
    torch.testing.assert_close(out["loss_lesion"], ((v_m_hat - v_m) ** 2).mean())
    torch.testing.assert_close(out["loss_brain"], ((v_x_hat - v_x) ** 2).mean())


def test_min_snr_weights_hand_computed():
    ab = S.alphas_cumprod
    snr = ab / (1 - ab)
    for prediction, base in ((PredictionType.V, snr + 1), (PredictionType.EPSILON, snr)):
        raw = torch.minimum(snr, torch.tensor(5.0, dtype=snr.dtype)) / base
        w = min_snr_weights(prediction, S, T, 5.0)
        torch.testing.assert_close(w, (raw / raw.mean())[T].float())
        assert w.dtype == torch.float32
    eps_w = min_snr_weights(PredictionType.EPSILON, S, torch.arange(1024), 5.0)
    assert torch.isclose(eps_w.mean(), torch.tensor(1.0))
    # ε: noisy steps (SNR ≤ γ) share one weight; nearly clean ones (SNR ≫ γ) count far less
    assert eps_w[T[1]] == eps_w[T[2]] and eps_w[T[0]] < 0.01 * eps_w[T[2]]
    # v: the weight peaks where SNR = γ and falls on both sides
    v_w = min_snr_weights(PredictionType.V, S, torch.arange(1024), 5.0)
    peak = int((snr - 5.0).abs().argmin())
    assert abs(int(v_w.argmax()) - peak) <= 1  # the step nearest SNR = γ, either side
    assert v_w[0] < 0.01 * v_w[peak] and v_w[-1] < 0.01 * v_w[peak]


def test_min_snr_objective_weights_each_item():
    denoiser = _random_denoiser()
    plain = PairedObjective(denoiser, S, clip=5.0, prediction=PredictionType.V)
    weighted = PairedObjective(denoiser, S, 5.0, prediction=PredictionType.V, min_snr_gamma=5.0)
    x0, m0, eps_x, eps_m = latents(0), latents(1), latents(2), latents(3)
    w = min_snr_weights(PredictionType.V, S, T, 5.0)
    per_item = []
    for i in range(3):
        one = [z[i : i + 1] for z in (x0, m0, T, eps_x, eps_m)]
        per_item.append(plain(*one, torch.ones(1))["loss_brain"])
    expected = (w * torch.stack(per_item)).mean()
    out = weighted(x0, m0, T, eps_x, eps_m, torch.ones(3))
    torch.testing.assert_close(out["loss_brain"], expected)


def test_lesion_weighted_brain_loss_weights_each_element_by_the_estimate():
    denoiser = _random_denoiser()
    plain = PairedObjective(denoiser, S, clip=5.0)
    weighted = PairedObjective(denoiser, S, clip=5.0, lesion_weighted=True)
    x0, m0, eps_x, eps_m = latents(0), latents(1), latents(2), latents(3)
    keep = torch.ones(3)
    x_t, m_t = q_sample(S, x0, T, eps_x), q_sample(S, m0, T, eps_m)
    with torch.no_grad():
        m0_hat = x0_from_eps(S, m_t, T, denoiser.predict_lesion(m_t, T, x_t)).clamp(-5, 5)
        out_x = denoiser.predict_brain(x_t, T, m0_hat)
        expected = ((out_x - eps_x).square() * m0_hat.sigmoid()).mean()
        got = weighted(x0, m0, T, eps_x, eps_m, keep)
        torch.testing.assert_close(got["loss_brain"], expected)
        assert not torch.isclose(plain(x0, m0, T, eps_x, eps_m, keep)["loss_brain"], expected)
        # the lesion model's loss is untouched
        torch.testing.assert_close(
            got["loss_lesion"], plain(x0, m0, T, eps_x, eps_m, keep)["loss_lesion"]
        )

"""Distribution scores of generated volumes: FID and MMD on 3D features, MS-SSIM diversity.

Every set is compared in model space (the generator's own grid): real scans are brought there by
:func:`usbrain.data.preprocess.preprocess`. Three comparisons bracket the model's score:
real-vs-real (two disjoint halves of the real scans: the floor), real-vs-USB (generated pairs),
and real-vs-noise (uniform noise volumes: what a feature network must call far). Sharpness: the
median over volumes of :func:`~usbrain.evaluate.regions.brain_sharpness`. Given the training
scans, memorisation: how near the samples lie to them (:mod:`usbrain.evaluate.memorisation`).
"""

from __future__ import annotations

import numpy as np
import torch

from usbrain.data.nifti import Volume
from usbrain.data.preprocess import preprocess
from usbrain.evaluate.distribution import frechet_distance, mmd, ms_ssim_diversity
from usbrain.evaluate.features import FeatureNetwork, extract_features
from usbrain.evaluate.memorisation import memorisation_scores
from usbrain.evaluate.regions import brain_sharpness
from usbrain.pipeline import Pipeline
from usbrain.tasks.generate import generate
from usbrain.tasks.results import Result

MS_SSIM_MIN_SIDE = 28  # three scales of a 7³ window


def model_space_images(pipe: Pipeline, scans: list[Volume]) -> torch.Tensor:
    """Real scans on the pipeline's model grid: (N, 1, D, H, W) in [0, 1]."""
    space = pipe.config.space
    return torch.stack([torch.from_numpy(preprocess(s, space).image)[None] for s in scans])


def _diversity(volumes: torch.Tensor) -> float:
    """MS-SSIM diversity, NaN for volumes too small for its three scales."""
    if min(volumes.shape[2:]) < MS_SSIM_MIN_SIDE or volumes.shape[0] < 2:
        return float("nan")
    return ms_ssim_diversity(volumes)


def _sharpness(volumes: torch.Tensor) -> float:
    """Median over (N, 1, D, H, W) ``volumes`` of :func:`brain_sharpness`."""
    return float(np.median([brain_sharpness(v) for v in volumes[:, 0].numpy()]))


def lesion_statistics(results: list[Result]) -> dict[str, float]:
    """What the generated pairs' masks look like: median fraction of lesion voxels inside the
    generated brain (pairing consistency, empty masks left out), median volume (mL) and the
    fraction of empty masks."""
    infos = [r.info for r in results]
    in_brain = [i["lesion_in_brain"] for i in infos if i["lesion_voxels"] > 0]
    return {
        "lesion_in_brain_median": float(np.median(in_brain)) if in_brain else float("nan"),
        "lesion_ml_median": float(np.median([i["lesion_ml"] for i in infos])),
        "empty_fraction": float(np.mean([i["lesion_voxels"] == 0 for i in infos])),
    }


@torch.inference_mode()
def pair_scores(pipe: Pipeline, n: int, seed: int = 0) -> dict:
    """:func:`lesion_statistics` of ``n`` generated pairs (no feature network needed); the
    samples of :func:`first_sample` on."""
    samples = generate(pipe, n, pipe.config.sampling, first_sample(seed, n))
    return {"n": n, **lesion_statistics(samples)}


def first_sample(seed: int, n: int) -> int:
    """The sample seed a benchmark seed's ``n`` samples start from: ``seed · n``, so that seeds
    share no sample (:func:`~usbrain.tasks.generate.generate` draws sample ``i`` from
    ``start + i``; starting at ``seed`` itself, seeds 0 and 1 would share ``n − 1`` samples)."""
    return seed * n


def _halves(real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint halves of N // 2 scans each (alternate scans)."""
    n = real.shape[0] // 2
    return real[0 : 2 * n : 2], real[1 : 2 * n : 2]


def _compare(
    network: FeatureNetwork, real: torch.Tensor, sets: dict[str, torch.Tensor]
) -> tuple[dict, dict[str, np.ndarray]]:
    """FID, MMD, MS-SSIM diversity and sharpness of each of ``sets`` against half of ``real``,
    beside real-vs-real (the other half); and every set's features (``real``: both halves)."""
    half_a, half_b = _halves(real)
    feats = {k: extract_features(network, v) for k, v in {"real_b": half_b, **sets}.items()}
    reference = extract_features(network, half_a)
    names = {"real_vs_real": "real_b"} | {f"real_vs_{k}": k for k in sets}
    return {
        "feature_network": network.name,
        "fid": {k: frechet_distance(reference, feats[v]) for k, v in names.items()},
        "mmd": {k: mmd(reference, feats[v]) for k, v in names.items()},
        "ms_ssim_diversity": {"real": _diversity(half_a), "usb": _diversity(sets["usb"])},
        "sharpness": {"real": _sharpness(half_a), "usb": _sharpness(sets["usb"])},
    }, {"real": np.concatenate([reference, feats["real_b"]]), **feats}


@torch.inference_mode()
def generation_scores(
    pipe: Pipeline,
    real: torch.Tensor,
    network: FeatureNetwork,
    seed: int = 0,
    train_features: np.ndarray | None = None,
) -> dict:
    """FID / MMD of real-vs-real, real-vs-USB and real-vs-noise, and MS-SSIM diversity.

    ``real``: (N, 1, D, H, W) held-out model-space scans, N ≥ 4; halves of N // 2 scans each,
    and as many generated and noise volumes. ``train_features``: ``network``'s features of the
    generator's training scans (:func:`extract_features`); given, ``memorisation`` holds the
    generated and the held-out volumes' distances to their nearest training scan
    (:func:`~usbrain.evaluate.memorisation.memorisation_scores`). Samples: :func:`first_sample`.
    """
    n = real.shape[0] // 2
    results = generate(pipe, n, pipe.config.sampling, first_sample(seed, n))
    usb = torch.stack([torch.from_numpy(r.image.data)[None] for r in results]).float()
    noise = torch.rand(usb.shape, generator=torch.Generator().manual_seed(seed))
    scores, feats = _compare(network, real, {"usb": usb, "noise": noise})
    if train_features is not None:
        scores["memorisation"] = memorisation_scores(feats["usb"], feats["real"], train_features)
    return {"n_per_set": n, **scores, **lesion_statistics(results)}


@torch.inference_mode()
def conditional_scores(
    real: torch.Tensor, conditioned: torch.Tensor, network: FeatureNetwork
) -> dict:
    """FID / MMD, MS-SSIM diversity and sharpness of brains generated for held-out lesion masks
    (``conditioned``: (M, 1, D, H, W) in model space) against half of the held-out ``real``
    scans, beside real-vs-real (the other half), as :func:`generation_scores` compares."""
    scores, _ = _compare(network, real, {"usb": conditioned})
    return {"n_real": real.shape[0] // 2, "n_conditioned": conditioned.shape[0], **scores}

"""The benchmark's Markdown report and figures, generated from its results (never typed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from usbrain import __version__
from usbrain.config import Coupling, to_dict
from usbrain.evaluate.benchmark import Case, read_cases, read_scans, run_benchmark, write_results
from usbrain.evaluate.features import FeatureNetwork, hdbet_encoder
from usbrain.evaluate.generation import generation_scores, model_space_images, pair_scores
from usbrain.evaluate.summary import format_value
from usbrain.files import atomic_dir, check_writable
from usbrain.pipeline import Pipeline
from usbrain.viz import comparison, save_figure

# Per task: (metric key, column title, better direction, digits).
COLUMNS = {
    "heal": [
        ("mae_lesion_output", "MAE in lesion to healthy truth", "lower", 4),
        ("mae_ratio", "MAE output / input", "lower", 3),
        ("psnr_outside", "PSNR outside (dB)", "higher", 1),
    ],
    "lesion": [
        ("mae_lesion_output", "MAE in lesion to true lesion scan", "lower", 4),
        ("intensity_ratio", "intensity after / before", "lower", 3),
        ("psnr_outside", "PSNR outside (dB)", "higher", 1),
    ],
}
KEY_METRIC = {"heal": "mae_lesion_output", "lesion": "mae_lesion_output"}


def table(results: dict, task: str) -> list[str]:
    cols = COLUMNS[task]
    lines = [
        "| method | " + " | ".join(f"{t} ({d})" for _, t, d, _ in cols) + " | seconds |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for name, r in results[task].items():
        cells = [format_value(r["median"][k], digits) for k, _, _, digits in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['seconds']:.0f} |")
    return lines


def bar_chart(results: dict, task: str, path: Path) -> Path:
    key = KEY_METRIC[task]
    names = list(results[task])
    values = [results[task][n]["median"][key] for n in names]
    fig = Figure(figsize=(1.2 * len(names) + 1.5, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.bar(names, values, color=["#d9480f" if n == "usb" else "#868e96" for n in names])
    title = next(t for k, t, _, _ in COLUMNS[task] if k == key)
    ax.set_ylabel(f"median {title}")
    ax.set_title(f"{task}: {title} (lower is better)")
    fig.tight_layout()
    return save_figure(fig, path, overwrite=True)


def method_montage(case: Case, task: str, outputs: dict[str, np.ndarray], path: Path) -> Path:
    source, truth = (case.sick, case.healthy) if task == "heal" else (case.healthy, case.sick)
    rows = [("input", source.data, case.mask.data)]
    rows += [(name, out, case.mask.data) for name, out in outputs.items()]
    rows.append(("ground truth", truth.data, case.mask.data))
    fig = comparison(rows, source.affine, title=f"{task} · {case.subject}")
    return save_figure(fig, path, overwrite=True)


def write_report(
    results: dict,
    examples: dict[str, dict[str, np.ndarray]],
    cases: list[Case],
    out: Path,
    header: list[str],
) -> Path:
    """``report.md`` and ``figures/`` in ``out`` from ``results`` (the numbers of results.json)."""
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    lines = [*header, ""]
    for task in ("heal", "lesion"):
        lines += [f"## {task.capitalize()}", "", *table(results, task), ""]
        bar_chart(results, task, figures / f"{task}_bars.png")
        method_montage(cases[0], task, examples[task], figures / f"{task}_methods.png")
        lines += [
            f"![{task} bars](figures/{task}_bars.png)",
            "",
            f"![{task} methods](figures/{task}_methods.png)",
            "",
        ]
    if "generation" in results:
        lines += ["## Generation", "", *generation_table(results["generation"]), ""]
    if "variants" in results:
        lines += ["## Trained variants", "", *variants_table(results["variants"]), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def feature_network(features: str, size: int) -> FeatureNetwork | None:
    """``"hdbet"``: the installed HD-BET weights; ``"none"``: no distribution scores; anything
    else: an HD-BET weight file at that path."""
    if features == "none":
        return None
    return hdbet_encoder(None if features == "hdbet" else Path(features), size=size)


def generation_table(scores: dict) -> list[str]:
    lines = [
        f"Features: {scores['feature_network']}; {scores['n_per_set']} volumes per set, all in "
        "model space. Real-vs-real compares two disjoint halves of the scans (the floor); "
        "real-vs-noise compares with uniform noise volumes (what must score far).",
        "",
        "| comparison | FID | MMD (KID kernel) |",
        "|---|---|---|",
    ]
    for key in ("real_vs_real", "real_vs_usb", "real_vs_noise"):
        lines.append(
            f"| {key.replace('_', ' ')} | {scores['fid'][key]:.2f} | {scores['mmd'][key]:.4f} |"
        )
    div = scores["ms_ssim_diversity"]
    lines += [
        "",
        f"MS-SSIM between pairs (lower = more diverse): real {format_value(div['real'], 3)}, USB "
        f"{format_value(div['usb'], 3)}. Median fraction of generated lesion voxels inside the "
        f"generated brain: {format_value(scores['lesion_in_brain_median'], 2)}.",
    ]
    return lines


def variants_table(variants: dict) -> list[str]:
    """One row per checkpoint: how it was trained, its USB edits and its generated pairs."""
    lines = [
        "The same data, sampling and seed for every checkpoint; `this checkpoint` is the one "
        "benchmarked above. Edits need the one-step-estimate coupling, so other couplings are "
        "scored on generation only. FID as in the generation section (when features are on).",
        "",
        "| checkpoint | coupling | training | heal MAE ratio | lesion intensity ratio | "
        "generated lesions in brain | lesion mL | empty masks | FID |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        heal_ratio = v["heal"]["median"]["mae_ratio"] if "heal" in v else float("nan")
        lesion_ratio = v["lesion"]["median"]["intensity_ratio"] if "lesion" in v else float("nan")
        g = v["generation"]
        fid = g["fid"]["real_vs_usb"] if "fid" in g else float("nan")
        cells = [
            v["coupling"],
            "staged" if v["staged"] else "joint",
            format_value(heal_ratio, 3),
            format_value(lesion_ratio, 3),
            format_value(g["lesion_in_brain_median"], 2),
            format_value(g["lesion_ml_median"], 1),
            format_value(g["empty_fraction"], 2),
            format_value(fid, 2),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def variant_results(
    pipe: Pipeline,
    cases: list[Case],
    real: torch.Tensor,
    network: FeatureNetwork | None,
    seed: int,
    edits: dict | None = None,
    generation: dict | None = None,
) -> dict:
    """A checkpoint's row of :func:`variants_table`; ``edits`` (heal/lesion results) and
    ``generation`` (its generation scores) when already computed."""
    d = pipe.config.diffusion
    entry: dict = {
        "weights_sha256": pipe.weights_sha256,
        "coupling": str(d.coupling),
        "staged": d.staged,
    }
    if d.coupling is Coupling.ESTIMATE:
        if edits is None:
            edits, _ = run_benchmark(pipe, cases, seed, only_usb=True)
        entry |= {"heal": edits["heal"]["usb"], "lesion": edits["lesion"]["usb"]}
    if generation is None:
        generation = (
            pair_scores(pipe, real.shape[0] // 2, seed)
            if network is None
            else generation_scores(pipe, real, network, seed)
        )
    return entry | {"generation": generation}


def benchmark_to_folder(
    checkpoint: Path,
    data: Path,
    out: Path,
    split: str = "test",
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
    features: str = "hdbet",
    feature_size: int = 128,
    ablations: bool = False,
    variants: dict[str, Path] | None = None,
) -> Path:
    """``usbrain benchmark``: run, then write ``results.json``, ``report.md`` and figures.

    ``ablations`` adds USB's sampling ablations as methods; ``variants`` (name → pipeline
    folder) scores other trained checkpoints (staged training, other couplings) beside this one.
    """
    check_writable(out, overwrite)
    cases = read_cases(data, split)
    network = feature_network(features, feature_size)
    pipe = Pipeline.from_pretrained(checkpoint, device)
    variant_pipes = {n: Pipeline.from_pretrained(p, device) for n, p in (variants or {}).items()}
    results, examples = run_benchmark(pipe, cases, seed, ablations)
    real = model_space_images(pipe, read_scans(data))
    if network is not None:
        results["generation"] = generation_scores(pipe, real, network, seed)
    if variant_pipes:
        this = variant_results(pipe, cases, real, network, seed, results, results.get("generation"))
        results["variants"] = {"this checkpoint": this} | {
            name: variant_results(p, cases, real, network, seed)
            for name, p in variant_pipes.items()
        }
    results["setup"] = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "weights_sha256": pipe.weights_sha256,
        "data": str(Path(data).resolve()),
        "split": split,
        "cases": [c.subject for c in cases],
        "seed": seed,
        "variants": {n: str(Path(p).resolve()) for n, p in (variants or {}).items()},
        "sampling": to_dict(pipe.config.sampling),
        "usbrain_version": __version__,
    }
    header = [
        "# usbrain benchmark",
        "",
        f"{len(cases)} {split} scans with a lesion and a known healthy version from "
        f"`{data}`; checkpoint `{checkpoint}` (weights SHA-256 {pipe.weights_sha256[:12]}…), "
        f"seed {seed}. Medians over scans; every number is in `results.json`.",
        "",
        "Heal starts from the pathological scan and is scored against its healthy version; "
        "lesion insertion starts from the healthy scan and is scored against the pathological "
        "one. PSNR outside: to the input, outside the lesion dilated by 2 voxels, in the brain.",
    ]
    with atomic_dir(out, overwrite) as tmp:
        write_results(results, tmp / "results.json")
        write_report(results, examples, cases, tmp, header)
    return out / "report.md"

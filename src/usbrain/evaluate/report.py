"""The benchmark's Markdown report and figures, generated from its results (never typed)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from usbrain import __version__
from usbrain.config import Coupling, to_dict
from usbrain.errors import InputError
from usbrain.evaluate.benchmark import (
    Case,
    SegmenterScores,
    read_cases,
    read_scans,
    run_benchmark,
    write_results,
)
from usbrain.evaluate.downstream import SETS, read_downstream, run_downstream
from usbrain.evaluate.features import FeatureNetwork, hdbet_encoder
from usbrain.evaluate.generation import generation_scores, model_space_images, pair_scores
from usbrain.evaluate.resume import FinishedMethods
from usbrain.evaluate.segmenter import SegmenterConfig
from usbrain.evaluate.summary import format_value
from usbrain.files import atomic_dir, atomic_file, claim
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
# Shown after COLUMNS when the results have them (`usbrain benchmark --segmenter`).
SEGMENTER_COLUMNS = {
    "heal": [
        ("seg_residual_ml", "segmenter: residual lesion (mL)", "lower", 2),
        ("seg_residual_fraction", "residual / lesion voxels", "lower", 3),
        ("seg_input_ml", "found in input (mL)", "reference", 2),
        ("seg_residual_of_input", "residual / found in input", "lower", 3),
    ],
    "lesion": [
        ("seg_dice", "segmenter Dice to target", "higher", 3),
        ("seg_volume_error_ml", "volume error (mL)", "lower", 2),
        ("seg_relative_volume_error", "relative volume error", "lower", 3),
    ],
}
# The scores other work publishes (evaluate/brats.py, evaluate/paired.py), a second table.
PAIRED = [
    ("psnr_full", "PSNR full (dB)", "higher", 1),
    ("psnr_healthy", "PSNR healthy region (dB)", "higher", 1),
    ("psnr_lesion", "PSNR lesion region (dB)", "higher", 1),
    ("ssim_full", "SSIM full", "higher", 3),
    ("ssim_healthy", "SSIM healthy region", "higher", 3),
    ("ssim_lesion", "SSIM lesion region", "higher", 3),
]
COMPARABLE_COLUMNS = {
    "heal": [
        ("brats_ssim", "BraTS SSIM", "higher", 3),
        ("brats_psnr", "BraTS PSNR (dB)", "higher", 2),
        ("brats_mse", "BraTS MSE", "lower", 4),
        *PAIRED,
    ],
    "lesion": PAIRED,
}
COMPARABLE_NOTE = {
    "heal": "Scores others publish: the BraTS inpainting challenge's, in the lesion mask against "
    "the healthy scan (its normalisation; winners score SSIM ≈ 0.84–0.86, PSNR ≈ 22–23 dB on "
    "BraTS), and PSNR / SSIM to the healthy scan over the full volume, the healthy region and "
    "the lesion region.",
    "lesion": "PSNR / SSIM to the real pathological scan over the full volume, the healthy "
    "region and the lesion region.",
}
KEY_METRIC = {"heal": "mae_lesion_output", "lesion": "mae_lesion_output"}
REFERENCE_ROW = "ground truth"


def columns(results: dict, task: str) -> list[tuple[str, str, str, int]]:
    """:data:`COLUMNS` of ``task``, then the :data:`SEGMENTER_COLUMNS` some method has."""
    present = {k for r in results[task].values() for k in r["median"]}
    return COLUMNS[task] + [c for c in SEGMENTER_COLUMNS[task] if c[0] in present]


def comparable_table(results: dict, task: str) -> list[str]:
    """One row per method: the medians of :data:`COMPARABLE_COLUMNS` (empty if none has them)."""
    present = {k for r in results[task].values() for k in r["median"]}
    cols = [c for c in COMPARABLE_COLUMNS[task] if c[0] in present]
    if not cols:
        return []
    lines = [
        "| method | " + " | ".join(f"{t} ({d})" for _, t, d, _ in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, r in results[task].items():
        cells = [format_value(r["median"].get(k, float("nan")), d) for k, _, _, d in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def table(results: dict, task: str) -> list[str]:
    """One row per method (medians over scans) and, with a segmenter, the ground-truth row: the
    segmenter's scores on the real healthy (heal) or pathological (lesion) scans."""
    cols = columns(results, task)
    lines = [
        "| method | " + " | ".join(f"{t} ({d})" for _, t, d, _ in cols) + " | seconds |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    nan = float("nan")
    for name, r in results[task].items():
        cells = [format_value(r["median"].get(k, nan), digits) for k, _, _, digits in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['seconds']:.0f} |")
    reference = results.get("segmenter_reference", {}).get(task)
    if reference is not None:
        cells = [format_value(reference["median"].get(k, nan), digits) for k, _, _, digits in cols]
        lines.append(f"| {REFERENCE_ROW} | " + " | ".join(cells) + " | — |")
    return lines


def segmenter_note(setup: dict) -> list[str]:
    """What the segmenter columns mean and which segmenter gave them (empty without one)."""
    seg = setup.get("segmenter")
    if seg is None:
        return []
    val = seg.get("val_dice")
    val_text = "no validation Dice recorded" if val is None else f"validation Dice {val:.3f}"
    return [
        f"Segmenter `{seg['path']}` ({val_text}): every scan is brought to model space and "
        "segmented. Heal: lesion it still finds inside the original lesion dilated by 2 model "
        "voxels, next to what it finds there in the input (its own sensitivity). Lesion "
        "insertion: Dice and volume error of what it finds against the target mask. The "
        f"`{REFERENCE_ROW}` rows are the segmenter on the real healthy (heal) and pathological "
        "(lesion) scans: what a perfect method would score.",
    ]


ROUND_TRIP_ROWS = (
    ("insert_heal_mae", "insert → heal: in-lesion MAE to the healthy scan (lower)", 1),
    ("insert_heal_mae_ratio", "insert → heal: that / the inserted scan's (lower; 0 = undone)", 3),
    ("insert_heal_psnr", "insert → heal: PSNR to the healthy scan, brain (dB, higher)", 1),
    ("heal_insert_intensity_ratio", "heal → insert: lesion intensity / the real lesion's (1)", 3),
    ("heal_insert_seg_dice", "heal → insert: segmenter Dice with the mask (higher)", 3),
)


def round_trip_table(round_trip: dict) -> list[str]:
    """USB's two round trips (:mod:`usbrain.evaluate.round_trips`), medians over scans."""
    medians = round_trip["usb"]["median"]
    lines = ["| round trip | median over scans |", "|---|---|"]
    for key, title, digits in ROUND_TRIP_ROWS:
        if key in medians:
            lines.append(f"| {title} | {format_value(medians[key], digits)} |")
    return lines


def downstream_table(downstream: dict) -> list[str]:
    """One row per training set of :data:`~usbrain.evaluate.downstream.SETS`."""
    config = downstream["config"]
    lines = [
        f"Lesion segmenters trained with the same config ({config['steps']} steps, channels "
        f"{tuple(config['channels'])}, seed {config['seed']}) on the '{downstream['train_split']}' "
        f"split's real pairs of `{downstream['train_data']}`, alone or with one synthetic pair "
        f"per healthy training scan (another training subject's mask; "
        f"{len(downstream['inserted'])} inserted, {len(downstream['skipped'])} skipped), "
        f"scored by lesion Dice on {len(downstream['test_scans'])} "
        f"'{downstream['test_split']}' pathological scans.",
        "",
        "| training set | pairs (real + synthetic) | test Dice mean (higher) | test Dice median "
        "(higher) | seconds |",
        "|---|---|---|---|---|",
    ]
    for name in SETS:
        r = downstream["sets"][name]
        lines.append(
            f"| {name} | {r['real']} + {r['synthetic']} | {format_value(r['dice_mean'], 3)} | "
            f"{format_value(r['dice_median'], 3)} | {r['seconds']:.0f} |"
        )
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


def optional_sections(results: dict) -> list[tuple[str, list[str]]]:
    """(title, lines) of the sections ``results`` has beyond heal and lesion, in report order:
    the same for ``report.md`` and the README block."""
    tables = (
        ("round_trip", "Round trips", round_trip_table),
        ("generation", "Generation", generation_table),
        ("variants", "Trained variants", variants_table),
        ("downstream", "Downstream", downstream_table),
    )
    return [(title, render(results[key])) for key, title, render in tables if key in results]


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
    note = segmenter_note(results.get("setup", {}))
    if note:
        lines += [*note, ""]
    for task in ("heal", "lesion"):
        lines += [f"## {task.capitalize()}", "", *table(results, task), ""]
        comparable = comparable_table(results, task)
        if comparable:
            lines += [COMPARABLE_NOTE[task], "", *comparable, ""]
        bar_chart(results, task, figures / f"{task}_bars.png")
        method_montage(cases[0], task, examples[task], figures / f"{task}_methods.png")
        lines += [
            f"![{task} bars](figures/{task}_bars.png)",
            "",
            f"![{task} methods](figures/{task}_methods.png)",
            "",
        ]
    for title, body in optional_sections(results):
        lines += [f"## {title}", "", *body, ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


README_BEGIN = "<!-- usbrain benchmark: begin (generated by `usbrain benchmark --readme`) -->"
README_END = "<!-- usbrain benchmark: end -->"


def _shown(path: str, base: Path) -> str:
    """``path`` relative to ``base`` when it lies below it (a README's own folder)."""
    p = Path(path)
    return str(p.relative_to(base)) if p.is_relative_to(base) else path


def readme_section(results: dict, base: Path) -> str:
    """The README's results block: what was run on what, then the tables of ``results``;
    paths below ``base`` (the README's folder) are shown relative to it."""
    setup = results["setup"]
    lines = [
        README_BEGIN,
        f"Data `{_shown(setup['data'], base)}` ({setup['split']} split: {len(setup['cases'])} "
        "scans with a lesion and a known healthy version), checkpoint "
        f"`{_shown(setup['checkpoint'], base)}` (weights "
        f"SHA-256 {setup['weights_sha256'][:12]}…), seed {setup['seed']}, usbrain "
        f"{setup['usbrain_version']}; medians over scans.",
        "",
    ]
    note = segmenter_note(setup)
    if note:
        lines += [*note, ""]
    for task in ("heal", "lesion"):
        lines += [f"**{task.capitalize()}**", "", *table(results, task), ""]
        comparable = comparable_table(results, task)
        if comparable:
            lines += [COMPARABLE_NOTE[task], "", *comparable, ""]
    for title, body in optional_sections(results):
        lines += [f"**{title}**", "", *body, ""]
    return "\n".join([*lines, README_END])


def readme_block(readme: Path) -> tuple[str, str]:
    """The README's text before and after its benchmark block, or an error naming the file."""
    text = readme.read_text() if readme.is_file() else ""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise InputError(
            f"{readme}: no benchmark block to replace; put these two lines where the results "
            f"go:\n  {README_BEGIN}\n  {README_END}"
        )
    return text[:begin], text[end + len(README_END) :]


def update_readme(readme: Path, section: str) -> None:
    """Replace the README's benchmark block by ``section``, atomically."""
    before, after = readme_block(readme)
    with atomic_file(readme, overwrite=True) as tmp:
        tmp.write_text(before + section + after)


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
    div, sharp = scores["ms_ssim_diversity"], scores["sharpness"]
    lines += [
        "",
        f"MS-SSIM between pairs (lower = more diverse): real {format_value(div['real'], 3)}, USB "
        f"{format_value(div['usb'], 3)}. Median fraction of generated lesion voxels inside the "
        f"generated brain: {format_value(scores['lesion_in_brain_median'], 2)}. Mean gradient "
        f"magnitude in the brain (sharpness): real {format_value(sharp['real'], 4)}, USB "
        f"{format_value(sharp['usb'], 4)}.",
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
    readme: Path | None = None,
    segmenter: Path | None = None,
    downstream: bool = False,
    downstream_steps: int | None = None,
    resume: bool = False,
    downstream_train: Path | None = None,
) -> Path:
    """``usbrain benchmark``: run, then write ``results.json``, ``report.md`` and figures.

    ``ablations`` adds USB's sampling ablations as methods; ``variants`` (name → pipeline
    folder) scores other trained checkpoints (staged training, other couplings) beside this one.
    ``readme``: a file whose benchmark block the results replace (checked before anything runs).
    ``segmenter``: a segmenter folder (``usbrain train-seg``, on the checkpoint's model space)
    that scores lesion fidelity (:class:`~usbrain.evaluate.benchmark.SegmenterScores`).
    ``downstream`` trains segmenters on real, real + USB and real + copy-paste pairs and scores
    them on the held-out scans (:mod:`usbrain.evaluate.downstream`), with ``segmenter``'s config
    when given (else the defaults) and ``downstream_steps`` steps when given, on the train
    split of ``downstream_train`` (default ``data``).

    Each edit method's results are kept beside ``out`` (``.NAME.finished/``) as it completes,
    until ``out`` is written; ``resume`` reads back those of a killed run with the same
    settings instead of sampling them again.
    """
    with claim(out, overwrite):
        if downstream_steps is not None and not downstream:
            raise InputError("--downstream-steps given without --downstream; add --downstream")
        if downstream_train is not None and not downstream:
            raise InputError("--downstream-train given without --downstream; add --downstream")
        if readme is not None:
            readme_block(readme)
        cases = read_cases(data, split)
        downstream_data = read_downstream(data, split, downstream_train) if downstream else None
        scorer = SegmenterScores.load(segmenter, device) if segmenter is not None else None
        downstream_config = scorer.segmenter.config if scorer is not None else SegmenterConfig()
        if downstream_steps is not None:
            downstream_config = replace(downstream_config, steps=downstream_steps)
        network = feature_network(features, feature_size)
        pipe = Pipeline.from_pretrained(checkpoint, device)
        if scorer is not None:
            scorer.check_space(pipe.config.space, checkpoint)
        variant_pipes = {
            n: Pipeline.from_pretrained(p, device) for n, p in (variants or {}).items()
        }
        key = {
            "weights_sha256": pipe.weights_sha256,
            "data": Path(data).resolve(),
            "manifest_sha256": hashlib.sha256(Path(data).read_bytes()).hexdigest(),
            "split": split,
            "cases": [c.subject for c in cases],
            "seed": seed,
            "ablations": ablations,
            "sampling": to_dict(pipe.config.sampling),
            "segmenter": segmenter and Path(segmenter).resolve(),
        }
        finished = FinishedMethods(out.parent / f".{out.name}.finished", key, resume)
        results, examples = run_benchmark(
            pipe, cases, seed, ablations, segmenter=scorer, finished=finished
        )
        if downstream_data is not None:
            results["downstream"] = run_downstream(
                pipe, downstream_data, downstream_config, seed, device
            )
        if network is not None or variant_pipes:  # the real scans are only read for these
            real = model_space_images(pipe, read_scans(data, split))
        if network is not None:
            results["generation"] = generation_scores(pipe, real, network, seed)
        if variant_pipes:
            this = variant_results(
                pipe, cases, real, network, seed, results, results.get("generation")
            )
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
        if scorer is not None:
            meta = scorer.segmenter.meta
            results["setup"]["segmenter"] = {
                "path": str(Path(segmenter).resolve()),
                "val_dice": meta.get("val_dice"),
                "val_scans": meta.get("val_scans"),
                "trained_on": meta.get("trained_on"),
                "space": meta.get("space"),
            }
        header = [
            "# usbrain benchmark",
            "",
            f"{len(cases)} {split} scans with a lesion and a known healthy version from "
            f"`{data}`; checkpoint `{checkpoint}` (weights SHA-256 {pipe.weights_sha256[:12]}…), "
            f"seed {seed}. Medians over scans; every number is in `results.json`.",
            "",
            "Heal starts from the pathological scan and is scored against its healthy "
            "version; lesion insertion starts from the healthy scan and is scored against the "
            "pathological one. PSNR outside: to the input, outside the lesion dilated by 2 "
            "voxels, in the brain.",
        ]
        with atomic_dir(out, overwrite) as tmp:
            write_results(results, tmp / "results.json")
            write_report(results, examples, cases, tmp, header)
        finished.discard()
        if readme is not None:
            update_readme(readme, readme_section(results, readme.resolve().parent))
        return out / "report.md"

"""The model half of ``make demo``: train the tiny preset, run the four tasks on held-out
cohort subjects and score them against the cohort's ground truth."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from usbrain.config import Config, SamplingConfig
from usbrain.data.nifti import load_image, load_mask
from usbrain.data.scan import Scan
from usbrain.evaluate.summary import format_value, nan_median
from usbrain.evaluate.tasks import condition_scores, heal_scores, lesion_scores
from usbrain.metrics import dice
from usbrain.pipeline import Pipeline
from usbrain.tasks.condition import condition
from usbrain.tasks.generate import generate
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion
from usbrain.tasks.outputs import provenance, sidecar, write_result
from usbrain.train.distributed import init_world
from usbrain.train.run import encode, train_autoencoder, train_paired

GENERATED = 4  # pathological samples; half as many healthy ones


@dataclass
class Training:
    pipeline: Path
    seconds: dict[str, float]
    autoencoder: dict[str, dict[str, float]]  # final reconstruction scores per split
    diffusion_first: dict[str, float]  # validation losses at step 0
    diffusion_last: dict[str, float]


def _validations(run: Path) -> list[dict[str, float]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [r for r in rows if any(k.startswith("val/") for k in r)]


def train_tiny(config: Config, cache: Path, root: Path) -> Training:
    """Autoencoder, latent cache and paired denoisers on the prepared cohort, under ``root``."""
    world = init_world(None)
    seconds = {}
    t0 = time.perf_counter()
    ae_ck = train_autoencoder(config, cache, root / "autoencoder", world)
    seconds["autoencoder"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    latents = encode(ae_ck, cache, root / "latents", world.device)
    seconds["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline = train_paired(config, latents, root / "diffusion", world)
    seconds["diffusion"] = time.perf_counter() - t0
    diffusion = _validations(root / "diffusion")
    return Training(
        pipeline,
        seconds,
        json.loads((root / "autoencoder" / "reconstruction.json").read_text()),
        diffusion[0],
        diffusion[-1],
    )


@dataclass
class TaskRun:
    """Scores per task (one dict per subject or sample) and the result folders."""

    heal: list[dict] = field(default_factory=list)
    heal_without_mask: list[dict] = field(default_factory=list)
    lesion: list[dict] = field(default_factory=list)
    condition: list[dict] = field(default_factory=list)
    generate: list[dict] = field(default_factory=list)
    folders: dict[str, list[Path]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


def _write(result, out: Path, command: str, inputs: dict, pipe, label: Path, sampling) -> Path:
    record = sidecar(command, sampling, inputs, result, provenance(pipe, label))
    return write_result(result, out, record, f"{command} · {out.name}")


def _arr(volume) -> np.ndarray:
    return np.asarray(volume.data, dtype=np.float32)


@torch.inference_mode()
def run_tasks(
    pipeline_dir: Path,
    cohort: Path,
    rows: list[dict],
    out: Path,
    label: Path,
    seed: int,
    without_mask: bool = False,
) -> TaskRun:
    """All four tasks on the test ``rows`` of the cohort manifest; results under ``out``.

    ``label``: the pipeline path the sidecars record (where it will be once the demo is done).
    ``without_mask``: also heal every scan without its mask (the model finds the lesion).
    """
    pipe = Pipeline.from_pretrained(pipeline_dir)
    sampling = pipe.config.sampling
    run = TaskRun(sampling=sampling)
    sick = [r for r in rows if r["kind"] != "healthy"]

    t0 = time.perf_counter()
    for row in sick:
        image, mask = load_image(cohort / row["image"]), load_mask(cohort / row["mask"])
        healthy = load_image(cohort / row["healthy_image"])
        result = heal(pipe, Scan.load(image, pipe.config.space, mask), sampling, seed)
        folder = _write(result, out / "heal" / row["subject"], "heal", row, pipe, label, sampling)
        scores = heal_scores(_arr(result.image), _arr(image), _arr(healthy), mask.data)
        run.heal.append({"subject": row["subject"], "kind": row["kind"], **scores})
        run.folders.setdefault("heal", []).append(folder)
    run.seconds["heal"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for row in sick if without_mask else []:
        image, mask = load_image(cohort / row["image"]), load_mask(cohort / row["mask"])
        healthy = load_image(cohort / row["healthy_image"])
        result = heal(pipe, Scan.load(image, pipe.config.space), sampling, seed)
        folder = _write(
            result, out / "heal-without-mask" / row["subject"], "heal", row, pipe, label, sampling
        )
        scores = heal_scores(_arr(result.image), _arr(image), _arr(healthy), mask.data)
        found_mask, true_mask = (
            torch.from_numpy(m > 0)[None, None] for m in (result.mask.data, mask.data)
        )
        found = float(dice(found_mask, true_mask)[0])
        run.heal_without_mask.append(
            {"subject": row["subject"], "kind": row["kind"], **scores, "found_dice": found}
        )
        run.folders.setdefault("heal-without-mask", []).append(folder)
    run.seconds["heal-without-mask"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for row in sick:
        healthy, mask = load_image(cohort / row["healthy_image"]), load_mask(cohort / row["mask"])
        truth = load_image(cohort / row["image"])
        result = lesion(pipe, Scan.load(healthy, pipe.config.space, mask), sampling, seed)
        folder = _write(
            result, out / "lesion" / row["subject"], "lesion", row, pipe, label, sampling
        )
        scores = lesion_scores(_arr(result.image), _arr(healthy), mask.data, _arr(truth))
        run.lesion.append({"subject": row["subject"], "kind": row["kind"], **scores})
        run.folders.setdefault("lesion", []).append(folder)
    run.seconds["lesion"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for row in sick:
        mask, real = load_mask(cohort / row["mask"]), load_image(cohort / row["image"])
        (result,) = condition(pipe, mask, 1, sampling, seed)
        folder = _write(
            result, out / "condition" / row["subject"], "condition", row, pipe, label, sampling
        )
        scores = condition_scores(_arr(result.image), mask.data, _arr(real))
        run.condition.append({"subject": row["subject"], **result.info, **scores})
        run.folders.setdefault("condition", []).append(folder)
    run.seconds["condition"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for healthy_only, n in ((False, GENERATED), (True, GENERATED // 2)):
        for i, result in enumerate(generate(pipe, n, sampling, seed, healthy=healthy_only)):
            name = f"{'healthy' if healthy_only else 'pair'}_{i:02d}"
            folder = _write(result, out / "generate" / name, "generate", {}, pipe, label, sampling)
            run.generate.append({"sample": name, **result.info})
            run.folders.setdefault("generate", []).append(folder)
    run.seconds["generate"] = time.perf_counter() - t0
    return run


def _table(rows: list[dict], columns: list[tuple[str, str, int]]) -> list[str]:
    """Markdown table; a key a row lacks is shown as "–"."""
    lines = [
        "| " + " | ".join(h for h, _, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [_cell(row.get(k), d) for _, k, d in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(value, digits: int) -> str:
    if value is None:
        return "–"
    return format_value(value, digits) if isinstance(value, float) else str(value)


def _median(rows: list[dict], key: str) -> float:
    return nan_median([r[key] for r in rows])


def _autoencoder_table(scores: dict[str, dict[str, float]]) -> list[str]:
    """Reconstruction scores, one column per split; Dice cells give the number of lesions."""
    splits = list(scores)
    lines = [
        "| autoencoder (EMA weights) | " + " | ".join(splits) + " |",
        "|---|" + "---|" * len(splits),
        "| image PSNR (dB) | " + " | ".join(f"{scores[s]['psnr']:.2f}" for s in splits) + " |",
        "| image SSIM | " + " | ".join(f"{scores[s]['ssim']:.3f}" for s in splits) + " |",
    ]
    for size, label in (("large", "≥ 5 mL"), ("small", "< 5 mL")):
        cells = [
            f"{format_value(scores[s][f'dice_{size}'])} (n = {scores[s][f'n_{size}']:.0f})"
            for s in splits
        ]
        lines.append(f"| mask Dice, lesions {label} | " + " | ".join(cells) + " |")
    return lines


def training_section(training: Training, root: Path) -> list[str]:
    """Markdown for the tiny training run: times, autoencoder and denoiser scores."""
    ae, first, last = training.autoencoder, training.diffusion_first, training.diffusion_last
    total = sum(training.seconds.values())
    lines = [
        "## Training (`tiny` preset)",
        "",
        f"Whole training {total / 60:.1f} min: autoencoder {training.seconds['autoencoder']:.0f} s,"
        f" encoding {training.seconds['encode']:.0f} s, paired denoisers "
        f"{training.seconds['diffusion']:.0f} s.",
        "",
        *_autoencoder_table(ae),
        "",
        "| denoiser validation loss | step 0 | last | last / first |",
        "|---|---|---|---|",
    ]
    for key in ("val/loss_lesion", "val/loss_brain"):
        lines.append(
            f"| {key[9:]} | {first[key]:.3f} | {last[key]:.3f} | {last[key] / first[key]:.2f} |"
        )
    return [
        *lines,
        "",
        f"Pipeline: `{training.pipeline.relative_to(root)}` (load it with "
        "`Pipeline.from_pretrained` or pass it to any task command as `--checkpoint`).",
        "",
    ]


def tasks_section(run: TaskRun, figures: Path, title: str, prefix: str) -> list[str]:
    """Markdown for one model's task results under ``title``; copies two montages per task to
    ``figures`` (names start with ``prefix``)."""
    pairs = [r for r in run.generate if not r["healthy"]]
    in_brain_condition = format_value(_median(run.condition, "lesion_in_brain"))
    contrast = format_value(_median(run.condition, "lesion_contrast"))
    real_contrast = format_value(_median(run.condition, "real_contrast"))
    # An empty mask lies trivially "inside": pairs without a lesion are counted, not scored.
    with_lesion = [r for r in pairs if r["lesion_voxels"] > 0]
    in_brain_pairs = format_value(_median(with_lesion, "lesion_in_brain")) if with_lesion else "–"
    heal_ratio = format_value(_median(run.heal, "mae_ratio"))
    heal_psnr = format_value(_median(run.heal, "psnr_outside"), 1)
    lesion_ratio = format_value(_median(run.lesion, "intensity_ratio"))
    lesion_psnr = format_value(_median(run.lesion, "psnr_outside"), 1)
    lines = [
        f"## {title}",
        "",
        f"Held-out subjects with a lesion: {len(run.heal)}. Sampling: {run.sampling.sampler} "
        f"with {run.sampling.steps} steps; heal from t = {run.sampling.t_start_heal}, lesion "
        f"from t = {run.sampling.t_start_lesion}; ACG + LCG as configured (sidecars list all).",
        "",
        "### Heal",
        "",
        f"Median in-lesion MAE to the known healthy scan: output / input = {heal_ratio}; median "
        f"PSNR to the input outside the dilated lesion {heal_psnr} dB "
        f"({run.seconds['heal']:.0f} s).",
        "",
        *_table(
            run.heal,
            [
                ("subject", "subject", 0),
                ("kind", "kind", 0),
                ("MAE in lesion, output", "mae_lesion_output", 4),
                ("MAE in lesion, input", "mae_lesion_input", 4),
                ("ratio", "mae_ratio", 2),
                ("PSNR outside (dB)", "psnr_outside", 1),
            ],
        ),
        "",
        "### Lesion insertion",
        "",
        f"Median intensity inside the target mask after / before {lesion_ratio}; median PSNR to "
        f"the input outside the dilated mask {lesion_psnr} dB ({run.seconds['lesion']:.0f} s).",
        "",
        *_table(
            run.lesion,
            [
                ("subject", "subject", 0),
                ("kind", "kind", 0),
                ("intensity after / before", "intensity_ratio", 2),
                ("PSNR outside (dB)", "psnr_outside", 1),
                ("MAE to true lesion scan", "mae_lesion_output", 4),
                ("MAE of input to it", "mae_lesion_input", 4),
            ],
        ),
        "",
        "### Conditional and unconditional generation",
        "",
        f"Fraction of lesion voxels inside the generated brain: median {in_brain_condition} "
        f"(condition), {in_brain_pairs} (generated pairs with a lesion; "
        f"{len(pairs) - len(with_lesion)} of {len(pairs)} generated pairs have an empty mask); "
        "lesion voxels of healthy samples: "
        f"{', '.join(str(r['lesion_voxels']) for r in run.generate if r['healthy'])}.",
        "",
        "Lesion contrast of the conditioned brains (mean intensity inside the mask / median of "
        f"the brain outside it; T1 lesions are dark, no lesion ≈ 1): median {contrast}, against "
        f"{real_contrast} in the real scans the masks come from.",
        "",
    ]
    gen_rows = [{"name": r["subject"], **r} for r in run.condition] + [
        {"name": r["sample"], **r} for r in run.generate
    ]
    lines += _table(
        gen_rows,
        [
            ("condition mask / generated sample", "name", 0),
            ("lesion voxels", "lesion_voxels", 0),
            ("fraction inside the generated brain", "lesion_in_brain", 2),
            ("lesion contrast", "lesion_contrast", 2),
            ("real scan's lesion contrast", "real_contrast", 2),
        ],
    )
    if run.heal_without_mask:
        lines += [
            "",
            "### Heal without a mask",
            "",
            "The model finds the lesion itself (`heal` without `--mask`); scored against the "
            "true mask, with the Dice of the lesion it found "
            f"({run.seconds['heal-without-mask']:.0f} s).",
            "",
            *_table(
                run.heal_without_mask,
                [
                    ("subject", "subject", 0),
                    ("kind", "kind", 0),
                    ("MAE ratio", "mae_ratio", 2),
                    ("PSNR outside (dB)", "psnr_outside", 1),
                    ("Dice of the lesion found", "found_dice", 2),
                ],
            ),
        ]
    lines += ["", "### Montages", ""]
    for task, folders in run.folders.items():
        for folder in folders[:2]:
            name = f"{prefix}{task}_{folder.name}.png"
            shutil.copyfile(folder / "montage.png", figures / name)
            lines += [f"![{task} {folder.name}](figures/{name})", ""]
    return lines


SIDE_BY_SIDE = (
    ("heal: in-lesion MAE output / input", "heal", "mae_ratio", 3),
    ("heal: PSNR outside (dB)", "heal", "psnr_outside", 1),
    ("heal: BraTS SSIM in the mask", "heal", "brats_ssim", 3),
    ("insertion: intensity after / before", "lesion", "intensity_ratio", 3),
    ("insertion: PSNR outside (dB)", "lesion", "psnr_outside", 1),
    ("condition: lesion contrast", "condition", "lesion_contrast", 2),
    ("condition: real scans' lesion contrast", "condition", "real_contrast", 2),
    ("condition: lesion voxels inside the brain", "condition", "lesion_in_brain", 2),
)


def side_by_side(runs: dict[str, TaskRun]) -> list[str]:
    """Medians of each model's task scores in one table (one column per model)."""
    lines = [
        "| median over held-out subjects | " + " | ".join(f"`{n}`" for n in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for title, task, key, digits in SIDE_BY_SIDE:
        cells = [format_value(_median(getattr(r, task), key), digits) for r in runs.values()]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    pairs = {n: [g for g in r.generate if not g["healthy"]] for n, r in runs.items()}
    cells = [f"{sum(g['lesion_voxels'] > 0 for g in p)} of {len(p)}" for p in pairs.values()]
    return [*lines, "| generated pairs with a lesion | " + " | ".join(cells) + " |"]

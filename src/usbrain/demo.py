"""``make demo``: the main job on built-in data, end to end, with a report to look at.

1. Build the synthetic cohort from the MNI152 template, check it and bring it to the ``tiny``
   model space (montages of each kind of subject).
2. The shipped ``base`` model (``models/base``, when the checkout has it): the four tasks and
   heal without a mask on held-out subjects of its own (rich) cohort, never trained on.
3. Train the ``tiny`` preset: autoencoder, latent cache, paired denoisers → ``train/pipeline``,
   the loop a user's own training runs.
4. Run the four tasks on the held-out (test) subjects, score the edits against the cohort's
   ground truth (:mod:`usbrain.evaluate.tasks`), collect the montages, and set both models
   side by side.

Everything lands in one folder, written atomically, with ``report.md`` on top.
"""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np

from usbrain.config import load_config
from usbrain.data.cache import prepare
from usbrain.data.cohort import write_cohort
from usbrain.data.csvfile import read_rows
from usbrain.data.masks import dilated, fraction_in_brain
from usbrain.data.pseudo import white_matter_mean
from usbrain.demo_tasks import run_tasks, side_by_side, tasks_section, train_tiny, training_section
from usbrain.files import atomic_dir
from usbrain.pipeline import SHIPPED_MODELS
from usbrain.viz import comparison, save_figure, save_montage

PRESET = "tiny"
# Base's held-out subjects: numbered far past the 200 its training cohort holds.
BASE_HELD_OUT_START = 10_000
BASE_HELD_OUT_SUBJECTS = 5  # four with a lesion (two strokes, two WMH), one healthy


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def subject_checks(row: dict[str, str], root: Path) -> dict[str, float]:
    """Ground-truth checks of one cohort subject (the properties the cohort promises)."""
    healthy, _ = _read(root / row["healthy_image"])
    sick, _ = _read(root / row["image"])
    mask = _read(root / row["mask"])[0] > 0
    brain = _read(root / row["brain"])[0] > 0
    outside = ~dilated(mask, 2)
    checks = {
        "lesion_ml": float(row["lesion_ml"]),
        "max_diff_outside": float(np.abs(sick - healthy)[outside].max()),
        "in_brain": fraction_in_brain(mask, brain) if mask.any() else float("nan"),
        "lesion_to_wm": float("nan"),
    }
    if mask.any():
        checks["lesion_to_wm"] = float(sick[mask].mean() / white_matter_mean(healthy, brain))
    return checks


def _pick(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """One subject of each kind (stroke, WMH, healthy) for the montages."""
    seen: dict[str, dict[str, str]] = {}
    for row in rows:
        seen.setdefault(row["kind"], row)
    return list(seen.values())


def run_demo(
    out: str | Path,
    subjects: int = 24,
    size: int = 64,
    seed: int = 0,
    overrides: list[str] | None = None,
    shipped: bool = True,
) -> Path:
    """Run the demo into ``out`` (replaced whole, atomically) and return its report's path.

    ``overrides`` change the ``tiny`` config (``key=value``, as ``--set`` does); ``shipped=False``
    leaves out the shipped model's tasks (what a training-seed benchmark needs is the ``tiny``
    run alone, whose weights do not depend on them).
    """
    config = load_config(PRESET, overrides=overrides)
    out = Path(out)
    start = time.perf_counter()
    with atomic_dir(out, overwrite=True) as tmp:
        manifest = write_cohort(tmp / "cohort", subjects=subjects, size=size, seed=seed)
        cohort_root = manifest.parent
        rows = [r.cells for r in read_rows(manifest)]
        t_cohort = time.perf_counter() - start
        prepare(manifest, tmp / "cache", config.space, seed=seed)
        t_prepare = time.perf_counter() - start - t_cohort

        figures = tmp / "figures"
        picked = _pick(rows)
        for row in picked:
            sick, affine = _read(cohort_root / row["image"])
            healthy, _ = _read(cohort_root / row["healthy_image"])
            mask = _read(cohort_root / row["mask"])[0]
            fig = comparison(
                [("healthy", healthy, None), ("pathological", sick, mask)],
                affine,
                title=f"{row['subject']} ({row['kind']}, {float(row['lesion_ml']):.1f} mL)",
            )
            save_figure(fig, figures / f"{row['subject']}_native.png")
            model_img, model_affine = _read(tmp / "cache" / "images" / f"{row['subject']}.nii.gz")
            model_mask_path = tmp / "cache" / "masks" / f"{row['subject']}.nii.gz"
            model_mask = _read(model_mask_path)[0] if model_mask_path.exists() else None
            save_montage(
                figures / f"{row['subject']}_model.png",
                model_img,
                model_affine,
                mask=model_mask,
                title=f"{row['subject']} in {PRESET} model space",
            )

        checks = [subject_checks(r, cohort_root) for r in rows]
        lines = _report(rows, checks, picked, config, subjects, size, seed, t_cohort, t_prepare)
        if overrides:
            settings = ", ".join(f"`{o}`" for o in overrides)
            lines += [f"Changed from the `{PRESET}` preset: {settings}.", ""]

        runs = {}
        base = SHIPPED_MODELS / "base"
        if shipped and (base / "meta.json").is_file():
            runs["base"] = _run_base(base, tmp, seed)
            lines += tasks_section(
                runs["base"],
                figures,
                "The shipped `base` model on held-out subjects",
                "base_",
            )
        training = train_tiny(config, tmp / "cache", tmp / "train")
        test_rows = [r for r in rows if r["split"] == "test"]
        label = out.resolve() / training.pipeline.relative_to(tmp)
        runs["tiny"] = run_tasks(
            training.pipeline, cohort_root, test_rows, tmp / "tasks", label, seed
        )
        lines += training_section(training, tmp)
        lines += tasks_section(
            runs["tiny"], figures, "The four tasks on held-out subjects (`tiny`)", ""
        )
        if len(runs) > 1:
            lines += [
                "## Side by side",
                "",
                "Each model on held-out subjects of its own cohort (base: 2 mm rich anatomy; "
                "tiny: the demo cohort at 4 mm).",
                "",
                *side_by_side(runs),
                "",
            ]
        lines += [
            "Files: `cohort/` (healthy, pathological, mask and brain NIfTI per subject, "
            "`manifest.csv`), `cache/` (the model-space cache training reads), `train/` "
            "(runs with metrics.jsonl and TensorBoard logs; `train/diffusion/pipeline` is the "
            "model), `tasks/` (one folder per result: NIfTI, montage, JSON sidecar; "
            "`tasks_base/` and `base_cohort/` the same for the shipped model), `figures/`.",
            "",
        ]
        (tmp / "report.md").write_text("\n".join(lines))
    return out / "report.md"


def _run_base(base: Path, tmp: Path, seed: int):
    """The four tasks and heal without a mask by the shipped model on its held-out subjects."""
    manifest = write_cohort(
        tmp / "base_cohort",
        BASE_HELD_OUT_SUBJECTS,
        size=100,
        seed=0,
        progress=False,
        variation="rich",
        start=BASE_HELD_OUT_START,
        held_out=True,
    )
    rows = [r.cells for r in read_rows(manifest)]
    return run_tasks(
        base, manifest.parent, rows, tmp / "tasks_base", base.resolve(), seed, without_mask=True
    )


def _report(rows, checks, picked, config, subjects, size, seed, t_cohort, t_prepare) -> list[str]:
    space = config.space
    lines = [
        "# usbrain demo",
        "",
        f"Built-in cohort: {subjects} subjects from the MNI152 2009a template (nilearn), "
        f"{size}³ voxels of {200 / size:.3f} mm, seed {seed} — {t_cohort:.1f} s. "
        f"Prepared to the `{PRESET}` model space ({space.size[0]}³ at {space.spacing:g} mm) "
        f"in {t_prepare:.1f} s.",
        "",
        "## Subjects",
        "",
        "| subject | kind | split | lesion mL | lesion / WM intensity | lesion in brain "
        "| max change outside mask ⊕ 2 voxels |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, c in zip(rows, checks, strict=True):
        ratio = "—" if np.isnan(c["lesion_to_wm"]) else f"{c['lesion_to_wm']:.2f}"
        inside = "—" if np.isnan(c["in_brain"]) else f"{100 * c['in_brain']:.0f}%"
        lines.append(
            f"| {row['subject']} | {row['kind']} | {row['split']} | {c['lesion_ml']:.2f} "
            f"| {ratio} | {inside} | {c['max_diff_outside']:g} |"
        )
    lines += ["", "## Montages", ""]
    for row in picked:
        s = row["subject"]
        lines += [
            f"### {s} ({row['kind']})",
            "",
            f"![{s} native](figures/{s}_native.png)",
            "",
            f"![{s} model space](figures/{s}_model.png)",
            "",
        ]
    return lines

"""``make weights`` / ``usbrain train-base``: the shipped ``base`` model, from a fresh clone.

The recipe, one stage after another, each kept in its own folder under ``out``:

1. ``cohort/``: the built-in cohort, ``rich`` variation (atrophy, larger deformations), 200
   subjects on a 100³ grid of 2 mm (:func:`usbrain.data.cohort.write_cohort`);
2. ``cache/``: brought to the ``base`` model space (96³ at 2 mm);
3. ``autoencoder/``, ``latents/``, ``diffusion/``: ``train-ae``, ``encode``, ``train``;
4. the pipeline copied to ``export`` (``models/base`` in the repo) in float16, with its
   ``timings.json``.

A stage whose output is complete is skipped, and a training stage with a checkpoint resumes
from it, so rerunning the command after a kill continues where it stopped and ends with the
weights an uninterrupted run gives (the loop resumes exactly). Seconds spent per stage add up
over sittings in ``out/timings.json``.

``autoencoder``: a finished autoencoder stage kept in the repo (``models/base-stages/``: its
EMA weights, config, scale factor, last validation and timings) starts the run from step 3's
``encode``, so the recipe can continue on a machine whose work folders did not persist.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from usbrain.config import Config, load_config
from usbrain.data.cache import prepare
from usbrain.data.cohort import write_cohort
from usbrain.errors import InputError
from usbrain.files import atomic_file
from usbrain.models.autoencoder import Autoencoder
from usbrain.pipeline import Pipeline
from usbrain.train.checkpoint import save_checkpoint
from usbrain.train.distributed import World
from usbrain.train.run import encode, train_autoencoder, train_paired
from usbrain.weights import load_weights, read_meta, read_weights

PRESET = "base"
SUBJECTS = 200
COHORT_SIZE = 100  # 200 mm field of view: the cohort's own grid is the model's 2 mm
VARIATION = "rich"


def _timed(out: Path, stage: str, run: Callable[[], object]) -> None:
    """Run ``stage`` and add its seconds to ``out/timings.json``, also when it is interrupted
    (an exception, Ctrl-C, or SIGTERM, which ``usbrain train-base`` turns into an exit)."""
    path = out / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    start = time.perf_counter()
    try:
        run()
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
        with atomic_file(path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(timings, indent=1))


def _finished(folder: Path, key: str) -> bool:
    """Whether a training stage's final checkpoint holds ``key`` in its meta (it ended)."""
    return (folder / "checkpoint").is_dir() and key in read_meta(folder / "checkpoint")


def adopt_autoencoder(stage: Path, out: Path, config: Config, recipe: dict[str, object]) -> None:
    """Make ``out/autoencoder`` the finished stage kept in ``stage`` (a folder of
    ``config.yaml``, ``meta.json``, ``ema.safetensors``, ``last_validation.json``,
    ``recipe.json``, ``timings.json``), refusing one of another recipe or config."""
    files = ("config.yaml", "meta.json", "ema.safetensors", "last_validation.json")
    missing = [f for f in (*files, "recipe.json", "timings.json") if not (stage / f).is_file()]
    if missing:
        raise InputError(f"{stage}: not an autoencoder stage (missing {', '.join(missing)})")
    if json.loads((stage / "recipe.json").read_text()) != recipe:
        raise InputError(f"{stage}: trained by another recipe than this run's ({recipe})")
    if load_config(path=stage / "config.yaml").autoencoder != config.autoencoder:
        raise InputError(f"{stage}: its autoencoder config differs from the {config.preset}'s")
    meta = read_meta(stage)
    if meta.get("kind") != "autoencoder" or "scale_factor" not in meta:
        raise InputError(f"{stage}/meta.json: not a finished autoencoder (no scale_factor)")
    model = Autoencoder(config.autoencoder)
    load_weights(model, read_weights(stage / "ema.safetensors"), str(stage))
    ae = out / "autoencoder"
    save_checkpoint(
        ae / "checkpoint",
        config,
        "autoencoder",
        meta["step"],
        model=model,
        ema=model,
        state={},
        extra_meta={"scale_factor": meta["scale_factor"]},
    )
    with atomic_file(ae / "metrics.jsonl", overwrite=True) as tmp:
        tmp.write_text((stage / "last_validation.json").read_text().strip() + "\n")
    # Only the autoencoder's seconds come from the stage's sitting; this run times the rest.
    seconds = json.loads((stage / "timings.json").read_text())["autoencoder"]
    path = out / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps({**timings, "autoencoder": seconds}, indent=1))


def train_base(
    out: str | Path,
    world: World,
    export: str | Path | None = None,
    overwrite: bool = False,
    autoencoder: str | Path | None = None,
    config: Config | None = None,
    subjects: int = SUBJECTS,
    cohort_size: int = COHORT_SIZE,
    progress: bool = True,
) -> Path:
    """Train (or continue training) ``base`` in ``out``; returns the pipeline folder.

    ``export``: also copy the pipeline there (replacing what it holds) in float16.
    ``autoencoder``: a kept autoencoder stage to adopt instead of training one. ``config``,
    ``subjects``, ``cohort_size``: the recipe's, changed only by tests (a tiny model on a
    small cohort). ``overwrite`` discards a run already in ``out`` and starts afresh.
    """
    out = Path(out)
    config = config or load_config(PRESET)
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "recipe.json"
    recipe = {
        "preset": config.preset,
        "subjects": subjects,
        "cohort_size": cohort_size,
        "variation": VARIATION,
        "seed": config.seed,
    }
    if marker.exists() and json.loads(marker.read_text()) != recipe:
        raise InputError(
            f"{out}: holds a run of another recipe ({marker.read_text().strip()}); "
            "give another --out or --overwrite"
        )
    marker.write_text(json.dumps(recipe))

    # Adopted first: a stage that does not fit is refused before the cohort's minutes.
    if autoencoder is not None and not _finished(out / "autoencoder", "scale_factor"):
        adopt_autoencoder(Path(autoencoder), out, config, recipe)
    cohort, cache = out / "cohort", out / "cache"
    if not (cohort / "manifest.csv").is_file():
        _timed(
            out,
            "cohort",
            lambda: write_cohort(
                cohort,
                subjects,
                cohort_size,
                seed=config.seed,
                overwrite=True,
                progress=progress,
                variation=VARIATION,
            ),
        )
    if not (cache / "manifest.csv").is_file():
        _timed(
            out,
            "prepare",
            lambda: prepare(
                cohort / "manifest.csv",
                cache,
                config.space,
                seed=config.seed,
                overwrite=True,
                progress=progress,
            ),
        )
    ae = out / "autoencoder"
    if not _finished(ae, "scale_factor"):
        resume = (ae / "checkpoint").is_dir()
        _timed(
            out,
            "autoencoder",
            lambda: train_autoencoder(
                config,
                cache,
                ae,
                world,
                resume=resume,
                overwrite=not resume,
                progress=progress,
                # The loop's last validation already scored the validation split.
                score_splits=(),
            ),
        )
    latents = out / "latents"
    if not (latents / "index.json").is_file():
        _timed(
            out,
            "encode",
            lambda: encode(ae / "checkpoint", cache, latents, world.device, overwrite=True),
        )
    diffusion = out / "diffusion"
    pipeline = diffusion / "pipeline"
    if not (pipeline / "meta.json").is_file():
        resume = (diffusion / "checkpoint").is_dir()
        _timed(
            out,
            "diffusion",
            lambda: train_paired(
                config,
                latents,
                diffusion,
                world,
                resume=resume,
                overwrite=not resume,
                progress=progress,
            ),
        )
    if export is not None:
        export_pipeline(pipeline, Path(export), out)
    return pipeline


def export_pipeline(pipeline: Path, export: Path, run: Path) -> Path:
    """``pipeline`` rewritten into ``export`` with float16 weights (half the size; the tasks
    compute in float32 whatever the file holds) and a model card, replacing it whole."""
    pipe = Pipeline.from_pretrained(pipeline)
    meta = read_meta(pipeline)
    for key in ("kind", "usbrain_version", "torch_version", "weights_dtype"):
        meta.pop(key, None)  # written anew
    timings = json.loads((run / "timings.json").read_text())
    meta["training_seconds"] = timings
    card = model_card(pipe, run, timings)
    out = pipe.save_pretrained(export, overwrite=True, weights_dtype="float16", card=card, **meta)
    digest = hashlib.sha256()
    for name in ("autoencoder", "denoiser"):
        digest.update((out / f"{name}.safetensors").read_bytes())
    with atomic_file(out / "SHA256", overwrite=True) as tmp:
        tmp.write_text(digest.hexdigest() + "\n")
    return out


def _last_validation(run: Path) -> dict[str, float]:
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines() if r]
    return [r for r in rows if any(k.startswith("val/") for k in r)][-1]


def model_card(pipe: Pipeline, run: Path, timings: dict[str, float]) -> str:
    """The README.md of an exported ``base``: data, recipe, command, seed, time, training
    scores (validation split), and where the held-out scores come from."""
    c = pipe.config
    recipe = json.loads((run / "recipe.json").read_text())
    ae = _last_validation(run / "autoencoder")
    diffusion = _last_validation(run / "diffusion")
    minutes = sum(timings.values()) / 60
    stages = ", ".join(f"{k} {v / 60:.0f}" for k, v in timings.items())
    return "\n".join(
        [
            "# usbrain `base`",
            "",
            "The USB joint brain + lesion model trained by `make weights` (`usbrain train-base "
            "--out runs/base --export models/base`) from a fresh clone. Load it with "
            '`Pipeline.from_pretrained("base")` or `--checkpoint base`.',
            "",
            "## Data",
            "",
            f"The built-in cohort (`usbrain cohort --variation {recipe['variation']}`): "
            f"{recipe['subjects']} synthetic subjects from the MNI152 2009a template (nilearn), "
            f"{recipe['cohort_size']}³ voxels of 2 mm, seed {recipe['seed']}: affine jitter "
            "and smooth deformations, enlarged ventricles, cortical and hippocampal atrophy of "
            "varying degree, a bias field and noise; four in five carry a stroke (lacunar or "
            "territorial, reaching the cortex; 1–150 mL, CSF-dark) or white-matter "
            "hyperintensities (periventricular and deep; 0.5–30 mL). Splits 70/15/15 by "
            "subject; training reads the train split only.",
            "",
            "## Model and recipe",
            "",
            f"- model space {c.space.size[0]}³ at {c.space.spacing:g} mm; latents "
            f"{c.latent_size[0]}³ × {c.autoencoder.latent_channels}",
            f"- autoencoder {list(c.autoencoder.channels)}: {c.train_autoencoder.steps} steps "
            f"({c.train_autoencoder.steps - c.autoencoder.whole_volume_steps} on "
            f"{c.autoencoder.train_patch}³ patches, then whole volumes), L1 + SSIM + mask Dice "
            f"+ patch adversarial (weight {c.autoencoder.adversarial_weight:g} from step "
            f"{c.autoencoder.adversarial_start})",
            f"- U-Nets {list(c.unet.channels)}, {c.diffusion.prediction}-prediction, min-SNR "
            f"{c.diffusion.min_snr_gamma:g}: {c.train_diffusion.steps} steps of batch "
            f"{c.train_diffusion.batch_size}",
            f"- seed {c.seed}; every value in `config.yaml` (the `{c.preset}` preset)",
            "- weights in float16 (the SHA-256 over both weight files, as the tasks' sidecars "
            "record it, is in `SHA256`); the tasks compute in float32",
            "",
            "## Training",
            "",
            f"{minutes:.0f} minutes on this run's machine ({stages} minutes per stage); "
            "rerunning the command after a kill continues the run.",
            "",
            "Last validation (validation split, EMA weights): autoencoder PSNR "
            f"{ae['val/psnr']:.2f} dB, SSIM {ae['val/ssim']:.3f}, mask Dice "
            f"{ae['val/dice_large']:.2f} (lesions ≥ 5 mL) / {ae['val/dice_small']:.2f} "
            f"(smaller); denoisers' loss {diffusion['val/loss_brain']:.4f} (brain), "
            f"{diffusion['val/loss_lesion']:.4f} (lesion).",
            "",
            "## Held-out scores",
            "",
            "On 64 subjects it never saw (`usbrain cohort --out runs/heldout-base --subjects 64 "
            "--size 100 --variation rich --start 200 --held-out`: 24 test scans with a lesion), "
            "three sampling seeds (`python bench/seeds.py --checkpoint base --data "
            "runs/heldout-base/manifest.csv --seeds 0,1,2 --out runs/seeds-base`, then "
            "`bench/condition_seeds.py` and `bench/by_kind.py` with the same arguments): "
            "every figure as median [min – max] in the repository's "
            "`docs/results/base-heldout/` (`summary.md`, `by_kind.md`) and its README.",
            "",
        ]
    )

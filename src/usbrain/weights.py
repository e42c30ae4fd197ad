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
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from usbrain.config import Config, load_config
from usbrain.data.cache import prepare
from usbrain.data.cohort import write_cohort
from usbrain.data.datasets import Split
from usbrain.errors import InputError
from usbrain.files import atomic_file
from usbrain.pipeline import Pipeline
from usbrain.train.checkpoint import read_meta
from usbrain.train.distributed import World
from usbrain.train.run import encode, train_autoencoder, train_paired

PRESET = "base"
SUBJECTS = 200
COHORT_SIZE = 100  # 200 mm field of view: the cohort's own grid is the model's 2 mm
VARIATION = "rich"


def _timed(out: Path, stage: str, run: Callable[[], object]) -> None:
    """Run ``stage`` and add its seconds to ``out/timings.json``."""
    path = out / "timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    start = time.perf_counter()
    run()
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(timings, indent=1))


def _finished(folder: Path, key: str) -> bool:
    """Whether a training stage's final checkpoint holds ``key`` in its meta (it ended)."""
    return (folder / "checkpoint").is_dir() and key in read_meta(folder / "checkpoint")


def train_base(
    out: str | Path,
    world: World,
    export: str | Path | None = None,
    overwrite: bool = False,
    config: Config | None = None,
    subjects: int = SUBJECTS,
    cohort_size: int = COHORT_SIZE,
    progress: bool = True,
) -> Path:
    """Train (or continue training) ``base`` in ``out``; returns the pipeline folder.

    ``export``: also copy the pipeline there (replacing what it holds) in float16. ``config``,
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
                score_splits=(Split.VAL,),
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
        export_pipeline(pipeline, Path(export), out / "timings.json")
    return pipeline


def export_pipeline(pipeline: Path, export: Path, timings: Path) -> Path:
    """``pipeline`` rewritten into ``export`` with float16 weights (half the size; the tasks
    compute in float32 whatever the file holds), replacing it whole."""
    pipe = Pipeline.from_pretrained(pipeline)
    meta = read_meta(pipeline)
    for key in ("kind", "usbrain_version", "torch_version", "weights_dtype"):
        meta.pop(key, None)  # written anew
    meta["training_seconds"] = json.loads(timings.read_text())
    return pipe.save_pretrained(export, overwrite=True, weights_dtype="float16", **meta)

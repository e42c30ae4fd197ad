"""The training commands end to end: ``train-ae``, ``encode`` and ``train``.

Each reads its inputs, checks them before any work, runs :func:`usbrain.train.loop.train` and
writes its outputs; only the main process writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch

from usbrain.config import Config
from usbrain.data.cache import PreparedDataset, read_space
from usbrain.data.datasets import Split
from usbrain.data.masks import voxel_ml
from usbrain.errors import ConfigError, InputError
from usbrain.files import atomic_file, claim, put_in_place, staging_path
from usbrain.models.autoencoder import Autoencoder
from usbrain.pipeline import Pipeline
from usbrain.train.autoencoder import AutoencoderJob, latent_scale_factor, reconstruction_metrics
from usbrain.train.checkpoint import load_checkpoint, save_checkpoint
from usbrain.train.diffusion import DiffusionJob
from usbrain.train.distributed import World
from usbrain.train.latents import encode_dataset, load_latents, save_latents
from usbrain.train.loop import train
from usbrain.weights import load_weights


@contextlib.contextmanager
def _run_folder(out: Path, resume: bool, overwrite: bool, world: World) -> Iterator[Path]:
    """The folder a training run fills, claimed by the main rank for the whole run.

    A new ``out`` (or ``--resume``) is filled in place, so a killed run can resume. Replacing
    an old run (``--overwrite``), the new one trains in a staging sibling that takes the old
    one's place only when training ends: a failed or killed rerun leaves the old run loadable.
    """
    out = Path(out)
    if resume and not (out / "checkpoint").is_dir():
        raise InputError(f"{out}: nothing to resume (no checkpoint/ inside)")
    held = claim(out, overwrite or resume) if world.is_main else contextlib.nullcontext()
    with held:
        if resume or not out.exists():
            yield out
            return
        staged = staging_path(out)
        if world.is_main:
            staged.mkdir()  # the claim removed any a killed rerun left
        try:
            yield staged
        except BaseException:
            if world.is_main:
                shutil.rmtree(staged, ignore_errors=True)
            raise
        if world.is_main:
            put_in_place(staged, out, overwrite=True)


def _check_space(config: Config, data: Path) -> None:
    space = read_space(data)
    if space != config.space:
        raise ConfigError(
            f"{data}: prepared for {space}, but the config's space is {config.space}; "
            "prepare the data with the same preset"
        )


def train_autoencoder(
    config: Config,
    data: Path,
    out: Path,
    world: World,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    score_splits: tuple[Split, ...] = tuple(Split),
) -> Path:
    """Train the autoencoder on a prepared cache; the final checkpoint holds the latent scale.

    ``reconstruction.json`` scores the splits in ``score_splits`` (each whole volume costs an
    encode and a decode: 20 s a split of 30 scans at 48³, minutes at 96³); none are scored
    (and no file written) for an empty tuple.
    """
    with _run_folder(out, resume, overwrite, world) as folder:
        _check_space(config, data)
        train_set = PreparedDataset(data, Split.TRAIN)
        val_set = PreparedDataset(data, Split.VAL)
        if len(train_set) == 0 or len(val_set) == 0:
            raise InputError(f"{data}: needs scans in both the train and val splits")
        job = AutoencoderJob(config, train_set, val_set)
        model, ema = train(
            job, config, config.train_autoencoder, folder, world, resume=resume, progress=progress
        )
        if world.is_main:
            scale = latent_scale_factor(ema, train_set, world.device)
            model.scale_factor.fill_(scale)
            ema.scale_factor.fill_(scale)
            ck = load_checkpoint(folder / "checkpoint", kind=job.kind)
            save_checkpoint(
                folder / "checkpoint",
                config,
                job.kind,
                int(ck.meta["step"]),
                model,
                ema,
                ck.state,
                extra_meta={"scale_factor": scale},
            )
            if score_splits:
                write_reconstruction_scores(
                    ema, data, config, folder / "reconstruction.json", world.device, score_splits
                )
    return out / "checkpoint"


def write_reconstruction_scores(
    autoencoder: Autoencoder,
    data: Path,
    config: Config,
    path: Path,
    device: torch.device,
    splits: tuple[Split, ...] = tuple(Split),
) -> None:
    """Reconstruction PSNR/SSIM and mask Dice of ``autoencoder`` on ``splits`` of the cache
    (validation alone may hold one or two large lesions), written to ``path`` as JSON."""
    ml = voxel_ml(config.space.spacing)
    scores = {}
    for split in splits:
        dataset = PreparedDataset(data, split)
        if len(dataset):
            scores[split.value] = reconstruction_metrics(autoencoder, dataset, device, ml, "")
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(scores, indent=1))


def load_autoencoder(checkpoint: Path) -> tuple[Config, Autoencoder]:
    """The EMA autoencoder of a ``train-ae`` checkpoint (with its latent scale factor)."""
    ck = load_checkpoint(checkpoint, kind="autoencoder")
    if "scale_factor" not in ck.meta:
        raise InputError(f"{checkpoint}: autoencoder training did not finish (no latent scale)")
    model = Autoencoder(ck.config.autoencoder)
    load_weights(model, ck.ema, str(checkpoint))
    return ck.config, model.eval()


def encode(
    checkpoint: Path, data: Path, out: Path, device: torch.device, overwrite: bool = False
) -> Path:
    """Encode a prepared cache with a trained autoencoder into a latent folder."""
    with claim(out, overwrite):
        config, model = load_autoencoder(checkpoint)
        _check_space(config, data)
        latents = encode_dataset(model, PreparedDataset(data), device)
        # Relative to the latent folder: the demo writes its run folder in a temporary place and
        # moves it as a whole, and users move experiment folders too.
        source = {
            "autoencoder": os.path.relpath(Path(checkpoint).resolve(), Path(out).resolve()),
            "data": os.path.relpath(Path(data).resolve(), Path(out).resolve()),
        }
        return save_latents(latents, out, source, overwrite)


def train_paired(
    config: Config,
    latents_dir: Path,
    out: Path,
    world: World,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Train both denoisers on a latent folder; writes ``out/pipeline`` ready for the tasks."""
    with _run_folder(out, resume, overwrite, world) as folder:
        latents, source = load_latents(latents_dir)
        ae_config, autoencoder = load_autoencoder(Path(source["autoencoder"]))
        if ae_config.autoencoder != config.autoencoder or ae_config.space != config.space:
            raise ConfigError(
                f"{latents_dir}: latents come from an autoencoder with another architecture or "
                "space than this config's; use the same preset for train-ae and train"
            )
        train_split, val_split = latents.select(Split.TRAIN), latents.select(Split.VAL)
        if train_split.x.shape[0] == 0 or val_split.x.shape[0] == 0:
            raise InputError(f"{latents_dir}: needs latents in both the train and val splits")
        if tuple(latents.x.shape[2:]) != config.latent_size:
            raise ConfigError(
                f"{latents_dir}: latents are {tuple(latents.x.shape[2:])}, config expects "
                f"{config.latent_size}"
            )
        job = DiffusionJob(config, train_split, val_split, autoencoder)
        _, ema = train(
            job, config, config.train_diffusion, folder, world, resume=resume, progress=progress
        )
        if world.is_main:
            pipe = Pipeline(config, autoencoder.cpu(), ema.cpu(), job.schedule)
            pipe.save_pretrained(
                folder / "pipeline",
                overwrite=True,
                trained_steps=job.total_steps(config.train_diffusion),
            )
    return out / "pipeline"

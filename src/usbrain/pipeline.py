"""A trained USB model as one object: autoencoder, paired denoisers and noise schedule.

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

import torch

from usbrain import __version__
from usbrain.config import Config, load_config, save_config
from usbrain.diffusion.schedule import NoiseSchedule
from usbrain.errors import InputError
from usbrain.files import atomic_dir
from usbrain.models.autoencoder import Autoencoder
from usbrain.models.denoiser import CompiledDenoiser, PairedDenoiser
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

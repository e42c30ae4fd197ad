"""The latent folder records where its latents came from, relative to itself."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import random_latents
from usbrain.train.latents import load_latents, save_latents


def test_relative_sources_resolve_against_the_folder(tmp_path):
    save_latents(random_latents(), tmp_path / "run/latents", {"autoencoder": "../ae/checkpoint"})
    shutil.move(tmp_path / "run", tmp_path / "moved")
    _, source = load_latents(tmp_path / "moved/latents")
    assert Path(source["autoencoder"]).resolve() == (tmp_path / "moved/ae/checkpoint").resolve()


def test_absolute_sources_of_older_folders_are_kept(tmp_path):
    save_latents(random_latents(), tmp_path / "latents", {"autoencoder": "/data/ae/checkpoint"})
    assert load_latents(tmp_path / "latents")[1]["autoencoder"] == "/data/ae/checkpoint"

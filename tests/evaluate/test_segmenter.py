"""The lesion segmenter on a tiny prepared cache of phantoms with bright cube lesions."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.conftest import phantom_brain, write
from usbrain.cli import main
from usbrain.config import ModelSpace
from usbrain.data.cache import PreparedDataset, prepare
from usbrain.errors import InputError, OutputExistsError, ShapeMismatchError
from usbrain.evaluate.segmenter import (
    META_FILE,
    WEIGHTS_FILE,
    PairDataset,
    SegmenterConfig,
    fit_segmenter,
    load_segmenter,
    segment,
    segmenter_dice,
    train_segmenter,
)

SPACE = ModelSpace(size=(24, 24, 24), spacing=4.0)
# Splits fixed in the manifest: 16 lesions + 1 healthy scan to train on, 3 held-out lesions.
SPLITS = ["train"] * 16 + ["val", "test", "test", "train"]
SMALL = SegmenterConfig(channels=(8, 16), steps=3)


def cube_cohort(root, seed=0):
    """Phantom brains (2 mm) with one bright (1300 vs white matter 900) cube lesion of 10 to 14
    voxels a side in the white matter, and the last one healthy; returns the manifest."""
    root.mkdir()
    rng = np.random.default_rng(seed)
    lines = ["subject,image,mask,split"]
    n = len(SPLITS)
    for i in range(n):
        image = phantom_brain(seed=i)
        mask_cell = ""
        if i < n - 1:
            side = int(rng.integers(10, 15))
            corner = [int(rng.integers(10, 30 - side // 2)) for _ in range(2)]
            corner.append(int(rng.integers(8, 28 - side // 2)))
            mask = np.zeros(image.shape, np.uint8)
            mask[tuple(slice(c, c + side) for c in corner)] = 1
            image[mask > 0] = 1300.0
            mask_cell = write(root / f"s{i}_mask.nii.gz", mask).name
        write(root / f"s{i}_t1.nii.gz", image)
        lines.append(f"s{i},s{i}_t1.nii.gz,{mask_cell},{SPLITS[i]}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    prepare(cube_cohort(root / "raw"), root / "cache", SPACE, progress=False)
    return root / "cache"


@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "segmenter"
    return train_segmenter(cache, SMALL, out, progress=False)


def test_training_writes_a_self_describing_folder(trained, cache):
    meta = json.loads((trained / META_FILE).read_text())
    assert meta["kind"] == "segmenter"
    assert SegmenterConfig(**meta["config"]) == SMALL
    assert meta["space"] == {"size": [24, 24, 24], "spacing": 4.0}
    assert meta["trained_on"] == {"cache": str(cache), "split": "train", "scans": 17}
    assert 0.0 <= meta["val_dice"] <= 1.0 and meta["val_scans"] == 1
    assert sorted(p.name for p in trained.iterdir()) == [META_FILE, WEIGHTS_FILE]


def test_same_seed_same_weights_and_save_load_round_trip(trained, cache, tmp_path):
    again = train_segmenter(cache, SMALL, tmp_path / "again", progress=False)
    a, b = load_segmenter(trained), load_segmenter(again)
    for (name, x), (_, y) in zip(
        a.network.state_dict().items(), b.network.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
    other = load_segmenter(
        train_segmenter(cache, replace(SMALL, seed=1), tmp_path / "seed1", progress=False)
    )
    first = next(iter(other.network.state_dict()))
    assert not torch.equal(other.network.state_dict()[first], a.network.state_dict()[first])

    image = PreparedDataset(cache, "test")[0]["image"]
    with torch.inference_mode():
        logits_a = a.network(image[None])
        logits_b = b.network(image[None])
    assert torch.equal(logits_a, logits_b)
    found = segment(a, image[0].numpy())
    assert found.dtype == np.uint8 and found.shape == SPACE.size and set(np.unique(found)) <= {0, 1}
    assert np.array_equal(found, segment(b, image[0].numpy()))
    # a lower threshold never finds less
    assert segment(a, image[0].numpy(), threshold=0.1).sum() >= found.sum()


def test_segment_refuses_an_image_off_the_model_grid(trained):
    segmenter = load_segmenter(trained)
    with pytest.raises(ShapeMismatchError, match=r"\(24, 24, 24\)"):
        segment(segmenter, np.zeros((20, 24, 24), np.float32))
    with pytest.raises(ValueError):
        segment(segmenter, np.zeros((1, 24, 24, 24), np.float32))


def copy_of(trained, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    for p in trained.iterdir():
        (out / p.name).write_bytes(p.read_bytes())
    return out


def test_corrupt_or_foreign_files_are_refused(trained, tmp_path):
    with pytest.raises(InputError, match="segmenter folder not found"):
        load_segmenter(tmp_path / "nowhere")

    bad = copy_of(trained, tmp_path)
    weights = bad / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError, match=rf"{weights}: corrupt or truncated"):
        load_segmenter(bad)

    weights.write_bytes((trained / WEIGHTS_FILE).read_bytes())
    meta_file = bad / META_FILE
    meta_file.write_text("{not json")
    with pytest.raises(InputError, match=rf"{meta_file}: corrupt"):
        load_segmenter(bad)

    meta = json.loads((trained / META_FILE).read_text())
    meta_file.write_text(json.dumps({**meta, "kind": "autoencoder"}))
    with pytest.raises(InputError, match="not a 'segmenter'"):
        load_segmenter(bad)

    meta_file.write_text(json.dumps({**meta, "config": {**meta["config"], "channels": [8, 32]}}))
    with pytest.raises(InputError, match=rf"{weights}: weights do not fit"):
        load_segmenter(bad)

    meta_file.write_text(json.dumps({**meta, "config": {**meta["config"], "depth": 3}}))
    with pytest.raises(InputError, match=rf"{meta_file}: 'config'.*depth"):
        load_segmenter(bad)

    meta_file.unlink()
    with pytest.raises(InputError, match=rf"{meta_file}: missing"):
        load_segmenter(bad)


def test_an_existing_output_or_an_empty_train_split_is_refused(trained, tmp_path):
    with pytest.raises(OutputExistsError):
        train_segmenter("unused", SMALL, trained, progress=False)
    empty = tmp_path / "cache"
    empty.mkdir()
    (empty / "space.json").write_text(json.dumps({"size": [24, 24, 24], "spacing": 4.0}))
    (empty / "manifest.csv").write_text("subject,image,mask,healthy_image,split\n")
    with pytest.raises(InputError, match="no scans in the 'train' split"):
        train_segmenter(empty, SMALL, tmp_path / "out", progress=False)


def test_a_few_dozen_steps_find_bright_cubes(cache, tmp_path):
    config = SegmenterConfig(channels=(8, 16, 32), steps=100)
    segmenter = load_segmenter(train_segmenter(cache, config, tmp_path / "seg", progress=False))
    held_out = {
        **segmenter_dice(segmenter, cache, "val"),
        **segmenter_dice(segmenter, cache, "test"),
    }
    assert len(held_out) == 3
    assert np.mean(list(held_out.values())) > 0.8, held_out


def test_cli_train_seg(cache, tmp_path, capsys):
    out = tmp_path / "seg"
    args = ["train-seg", "--data", str(cache), "--out", str(out), "--steps", "2", "--seed", "3"]
    assert main(args) == 0
    assert (out / WEIGHTS_FILE).is_file() and (out / META_FILE).is_file()
    meta = json.loads((out / META_FILE).read_text())
    assert meta["config"]["steps"] == 2 and meta["config"]["seed"] == 3
    capsys.readouterr()

    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and str(out) in err and "Traceback" not in err
    assert main([*args, "--overwrite"]) == 0

    assert (
        main(["train-seg", "--data", str(cache), "--out", str(tmp_path / "x"), "--steps", "0"]) == 2
    )
    assert "steps=0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_in_memory_pairs_train_the_same_weights_as_the_cache(trained, cache):
    train = PreparedDataset(cache, "train")
    items = [train[i] for i in range(len(train))]
    pairs = PairDataset(
        [i["image"][0].numpy() for i in items],
        [i["mask"][0].numpy() for i in items],
        SPACE,
        [i["subject"] for i in items],
    )
    assert len(pairs) == len(train) and pairs[0]["subject"] == items[0]["subject"]
    assert torch.equal(pairs[3]["image"], items[3]["image"])
    fitted = fit_segmenter(pairs, SMALL, progress=False)
    assert fitted.meta["space"] == {"size": SPACE.size, "spacing": 4.0}
    assert fitted.meta["scans"] == len(train)
    saved = load_segmenter(trained)
    for (name, x), (_, y) in zip(
        fitted.network.state_dict().items(), saved.network.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name


def test_pairs_off_the_model_grid_are_refused():
    image = np.zeros((24, 24, 24), np.float32)
    with pytest.raises(ShapeMismatchError, match=r"pair 'b'.*\(24, 24, 20\)"):
        PairDataset([image, image], [image, image[..., :20]], SPACE, ["a", "b"])
    with pytest.raises(InputError, match="1 images, 2 masks"):
        PairDataset([image], [image, image], SPACE, ["a"])
    with pytest.raises(InputError, match="no \\(image, mask\\) pairs"):
        fit_segmenter(PairDataset([], [], SPACE), SMALL, progress=False)

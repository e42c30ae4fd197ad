"""``usbrain benchmark`` on a small cohort with a micro pipeline (random weights)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tests.conftest import micro_config
from usbrain.cli import main
from usbrain.data.cohort import write_cohort
from usbrain.errors import InputError
from usbrain.evaluate.features import HDBETEncoder
from usbrain.evaluate.report import README_BEGIN, README_END
from usbrain.evaluate.summary import format_value


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from usbrain.pipeline import Pipeline

    root = tmp_path_factory.mktemp("bench")
    manifest = write_cohort(root / "cohort", subjects=10, size=32, seed=0)
    # Four held-out scans (three with a lesion of 20 mL or more, which the micro model's 12 mm
    # grid keeps): the fewest distribution scores take.
    rows = manifest.read_text().splitlines()
    test, val = {"sub-000", "sub-005", "sub-007", "sub-009"}, {"sub-004", "sub-008"}
    with_splits = [r.split(",") for r in rows[1:]]
    for row in with_splits:
        row[4] = "test" if row[0] in test else "val" if row[0] in val else "train"
    manifest.write_text("\n".join([rows[0], *(",".join(r) for r in with_splits)]) + "\n")
    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config()).save_pretrained(root / "pipeline")
    torch.save(HDBETEncoder().state_dict(), root / "hdbet_random.pt")
    return manifest, pipe, root / "hdbet_random.pt"


def test_benchmark_scores_every_method_and_the_report_matches_results(setup, tmp_path, capsys):
    manifest, pipe, features = setup
    out = tmp_path / "bench"
    args = [
        "benchmark",
        "--checkpoint",
        pipe,
        "--data",
        manifest,
        "--out",
        out,
        "--features",
        features,
        "--feature-size",
        "32",
    ]
    assert main([str(a) for a in args]) == 0
    results = json.loads((out / "results.json").read_text())
    methods = {"usb", "sdedit", "inpaint", "wm-fill", "mirror-fill", "floor: true latent"}
    assert set(results["heal"]) == methods
    assert set(results["lesion"]) == {"usb", "sdedit-acg", "paste", "intensity-model"}
    assert results["setup"]["cases"] and len(results["setup"]["weights_sha256"]) == 64
    report = (out / "report.md").read_text()
    for task, section in (("heal", "## Heal"), ("lesion", "## Lesion")):
        body = report.split(section)[1]
        for name, r in results[task].items():
            row = re.search(rf"^\| {re.escape(name)} \| (.+) \|$", body, re.M).group(1)
            shown = row.split(" | ")[0]
            value = r["median"]["mae_lesion_output"]
            assert shown == f"{value:.4f}", (task, name, shown, value)
    # The scores others publish, in their own table after the first.
    heal_tables = report.split("## Heal")[1].split("\n## ")[0].strip().split("\n\n")
    comparable = next(t for t in heal_tables if "BraTS SSIM" in t)
    for name, r in results["heal"].items():
        row = re.search(rf"^\| {re.escape(name)} \| (.+) \|$", comparable, re.M).group(1)
        assert row.split(" | ")[0] == f"{r['median']['brats_ssim']:.3f}", name
    for png in re.findall(r"\]\((figures/[^)]+)\)", report):
        assert (out / png).is_file()
    generation = results["generation"]
    assert generation["n_per_set"] == 2 and "HD-BET" in generation["feature_network"]
    assert set(generation["fid"]) == {"real_vs_real", "real_vs_usb", "real_vs_noise"}
    assert f"| real vs usb | {generation['fid']['real_vs_usb']:.2f} |" in report
    # Random weights may generate no tissue interior: NaN, stored as "nan", shown as "—".
    sharp = {k: format_value(float(v), 4) for k, v in generation["sharpness"].items()}
    assert f"real {sharp['real']}, USB {sharp['usb']}." in report
    assert float(generation["sharpness"]["real"]) > 0
    assert all(r["sharpness_ratio"] > 0 for r in results["heal"]["usb"]["cases"])
    # Baselines that only touch the lesion leave the rest exactly as it was.
    assert results["heal"]["wm-fill"]["median"]["psnr_outside"] == "inf"


def test_benchmark_needs_ground_truth(setup, tmp_path, capsys):
    _, pipe, _ = setup
    bare = tmp_path / "bare.csv"
    bare.write_text("subject,image\ns1,x.nii.gz\n")
    code = main(
        ["benchmark", "--checkpoint", str(pipe), "--data", str(bare), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "missing column" in capsys.readouterr().err


def test_ablations_and_trained_variants_are_scored_side_by_side(setup, tmp_path):
    from usbrain.pipeline import Pipeline

    manifest, pipe, _ = setup
    torch.manual_seed(1)
    independent = Pipeline.build(micro_config("diffusion.coupling=none"))
    independent = independent.save_pretrained(tmp_path / "independent")
    out = tmp_path / "bench"
    args = ["benchmark", "--checkpoint", pipe, "--data", manifest, "--out", out, "--features"]
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_BEGIN}\nold numbers\n{README_END}\n\nMore text.\n")
    args += ["none", "--ablations", "--variant", f"independent={independent}", "--readme", readme]
    assert main([str(a) for a in args]) == 0
    results = json.loads((out / "results.json").read_text())
    for task in ("heal", "lesion"):
        ablations = ("no-acg", "no-lcg", "pull-noised", "map-latent", "100-steps")
        assert {f"usb {a}" for a in ablations} <= set(results[task])
    variants = results["variants"]
    assert set(variants) == {"this checkpoint", "independent"}
    assert variants["this checkpoint"]["heal"] == results["heal"]["usb"]
    assert "heal" not in variants["independent"]  # edits need the estimate coupling
    assert variants["independent"]["coupling"] == "none"
    assert variants["independent"]["generation"]["n"] == 2
    report = (out / "report.md").read_text()
    row = re.search(r"^\| independent \| none \| joint \| — \| — \| (.+) \|$", report, re.M)
    assert row is not None, report.split("## Trained variants")[1]
    text = readme.read_text()
    assert text.startswith("# Title\n\n") and text.endswith("\n\nMore text.\n")
    assert "old numbers" not in text and row.group(0) in text
    usb = results["heal"]["usb"]["median"]["mae_lesion_output"]
    assert f"| usb | {usb:.4f} |" in text


def test_benchmark_refuses_a_malformed_variant_or_a_readme_without_markers(setup, tmp_path, capsys):
    manifest, pipe, _ = setup
    args = ["benchmark", "--checkpoint", pipe, "--data", manifest, "--out", tmp_path / "b"]
    assert main([str(a) for a in [*args, "--variant", "nodir"]]) == 2
    assert "NAME=PIPELINE_DIR" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert main([str(a) for a in [*args, "--readme", readme]]) == 2
    assert "no benchmark block" in capsys.readouterr().err
    assert readme.read_text() == "# no markers\n"
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def segmenter(setup, tmp_path_factory):
    """A few-step segmenter trained on the cohort's train split in the micro pipeline's space."""
    from usbrain.data.cache import prepare
    from usbrain.evaluate.segmenter import SegmenterConfig, train_segmenter

    manifest = setup[0]
    root = tmp_path_factory.mktemp("segmenter")
    space = micro_config().space
    prepare(manifest, root / "cache", space, progress=False)
    config = SegmenterConfig(channels=(8, 16), steps=3)
    return train_segmenter(root / "cache", config, root / "segmenter", progress=False)


@pytest.fixture(scope="module")
def scored(setup, segmenter, tmp_path_factory):
    """``usbrain benchmark --segmenter --downstream`` on the cohort (no feature network)."""
    manifest, pipe, _ = setup
    out = tmp_path_factory.mktemp("scored") / "bench"
    args = ["benchmark", "--checkpoint", pipe, "--data", manifest, "--out", out]
    args += ["--features", "none", "--segmenter", segmenter]
    args += ["--downstream", "--downstream-steps", "2"]
    assert main([str(a) for a in args]) == 0
    return json.loads((out / "results.json").read_text()), (out / "report.md").read_text()


def table_rows(report: str, section: str) -> dict[str, list[str]]:
    """The cells of each row of the first table after ``section``, by row name."""
    body = report.split(section)[1].split("\n## ")[0]
    first = next(b for b in body.split("\n\n") if b.strip().startswith("|"))
    rows = re.findall(r"^\| (.+) \|$", first, re.M)
    return {r.split(" | ")[0]: r.split(" | ")[1:] for r in rows[1:]}  # rows[0]: the header


def test_segmenter_columns_and_ground_truth_rows_match_results(scored, segmenter):
    from usbrain.evaluate.report import COLUMNS, SEGMENTER_COLUMNS

    results, report = scored
    seg = results["setup"]["segmenter"]
    meta = json.loads((segmenter / "segmenter.json").read_text())
    assert seg["path"] == str(segmenter.resolve()) and seg["val_dice"] == meta["val_dice"]
    assert f"Segmenter `{seg['path']}` (validation Dice {meta['val_dice']:.3f})" in report
    reference = results["segmenter_reference"]
    for task, section in (("heal", "## Heal"), ("lesion", "## Lesion")):
        header = report.split(section)[1].split("\n")[2]
        for _, title, _, _ in SEGMENTER_COLUMNS[task]:
            assert title in header, (task, title)
        rows = table_rows(report, section)
        assert set(rows) == {*results[task], "ground truth"}
        for offset, (key, _, _, digits) in enumerate(SEGMENTER_COLUMNS[task]):
            column = len(COLUMNS[task]) + offset
            for name, r in [*results[task].items(), ("ground truth", reference[task])]:
                value = r["median"][key]
                shown = "—" if value == "nan" else f"{value:.{digits}f}"
                assert rows[name][column] == shown, (task, name, key)
        assert rows["ground truth"][0] == "—"  # image scores do not apply to the truth itself
    for r in results["heal"].values():
        found = r["cases"][0]
        assert found["seg_residual_ml"] >= 0 and found["seg_input_ml"] >= 0
    for r in [*results["lesion"].values(), reference["lesion"]]:
        assert all(0.0 <= c["seg_dice"] <= 1.0 for c in r["cases"])
    # The input is the same for every heal method, so is what the segmenter finds in it.
    assert len({r["median"]["seg_input_ml"] for r in results["heal"].values()}) == 1


def test_round_trip_rows_in_the_report_match_results(scored):
    from usbrain.evaluate.report import ROUND_TRIP_ROWS

    results, report = scored
    trips = results["round_trip"]["usb"]
    assert len(trips["cases"]) == len(results["setup"]["cases"])
    assert all(0.0 <= c["heal_insert_seg_dice"] <= 1.0 for c in trips["cases"])
    rows = table_rows(report, "## Round trips")
    for key, title, digits in ROUND_TRIP_ROWS:
        assert rows[title] == [f"{trips['median'][key]:.{digits}f}"], key


def test_tables_render_without_segmenter_columns():
    from usbrain.evaluate.report import table

    results = {
        "heal": {
            "usb": {
                "median": {"mae_lesion_output": 0.5, "mae_ratio": 0.2, "psnr_outside": 31.0},
                "seconds": 1.0,
            }
        }
    }
    lines = table(results, "heal")
    assert len(lines) == 3 and "segmenter" not in lines[0] and "ground truth" not in lines[2]
    assert lines[2] == "| usb | 0.5000 | 0.200 | 31.0 | 1 |"


def test_downstream_rows_in_the_report_match_results(scored, setup):
    import csv

    manifest, _, _ = setup
    results, report = scored
    downstream = results["downstream"]
    with manifest.open() as f:
        train = [r for r in csv.DictReader(f) if r["split"] == "train"]
    sets = downstream["sets"]
    assert list(sets) == ["real", "real + usb", "real + copy-paste"]
    assert downstream["config"]["steps"] == 2 and downstream["config"]["channels"] == [8, 16]
    assert len(downstream["inserted"]) + len(downstream["skipped"]) == len(train)
    assert all(i["donor"] != i["recipient"] for i in downstream["inserted"])
    rows = table_rows(report, "## Downstream")
    for name, r in sets.items():
        assert 0.0 <= r["dice_mean"] <= 1.0 and len(r["cases"]) == len(downstream["test_scans"])
        assert r["real"] == len(train)
        assert r["synthetic"] == (0 if name == "real" else len(downstream["inserted"]))
        assert rows[name][:3] == [
            f"{r['real']} + {r['synthetic']}",
            f"{r['dice_mean']:.3f}",
            f"{r['dice_median']:.3f}",
        ]


def test_a_segmenter_on_another_grid_is_refused_naming_its_file(setup, segmenter, tmp_path, capsys):
    manifest, pipe, _ = setup
    other = tmp_path / "other"
    other.mkdir()
    for p in segmenter.iterdir():
        (other / p.name).write_bytes(p.read_bytes())
    meta = json.loads((other / "segmenter.json").read_text())
    meta["space"] = {"size": [24, 24, 24], "spacing": 8.0}
    (other / "segmenter.json").write_text(json.dumps(meta))
    out = tmp_path / "bench"
    args = ["benchmark", "--checkpoint", pipe, "--data", manifest, "--out", out]
    assert main([str(a) for a in [*args, "--features", "none", "--segmenter", other]]) == 2
    err = capsys.readouterr().err
    assert f"{other / 'segmenter.json'}" in err and "(24, 24, 24)" in err and "(16, 16, 16)" in err
    assert "Traceback" not in err and not out.exists()


def test_downstream_without_its_inputs_is_refused_before_anything_runs(setup, tmp_path, capsys):
    import csv

    manifest, pipe, _ = setup
    with manifest.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # no training split left, the test split intact
        r["split"] = "val" if r["split"] == "train" else r["split"]
        for column in ("image", "mask", "healthy_image", "brain"):
            r[column] = str(manifest.parent / r[column])
    bare = tmp_path / "no_train.csv"
    with bare.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "bench"
    args = ["benchmark", "--checkpoint", pipe, "--data", bare, "--out", out, "--features", "none"]
    assert main([str(a) for a in [*args, "--downstream"]]) == 2
    err = capsys.readouterr().err
    assert str(bare) in err and "no 'train' scan with a lesion mask" in err
    assert main([str(a) for a in [*args, "--downstream-steps", "2"]]) == 2
    assert "without --downstream" in capsys.readouterr().err
    assert main([str(a) for a in [*args, "--downstream-train", manifest]]) == 2
    assert "--downstream-train given without --downstream" in capsys.readouterr().err
    assert not out.exists()


def test_the_real_set_of_distribution_scores_is_the_held_out_split_only(setup):
    from usbrain.data.datasets import read_manifest
    from usbrain.evaluate.benchmark import read_scans

    manifest = setup[0]
    records = read_manifest(manifest)
    for split in ("train", "test"):
        expected = sorted(str(r.image) for r in records if r.split == split)
        assert sorted(str(v.path) for v in read_scans(manifest, split)) == expected

    with pytest.raises(InputError, match="need at least 4"):
        read_scans(manifest, "val")


def test_round_trips_start_from_the_benchmarks_own_usb_edits(setup, tmp_path, monkeypatch):
    """Each round trip's first edit is USB's scored edit of that case: made once, not twice."""
    from usbrain.evaluate import round_trips

    manifest, pipe, _ = setup
    edits = []
    for name in ("heal", "lesion"):
        edit = getattr(round_trips, name)
        monkeypatch.setattr(
            round_trips, name, lambda *a, _e=edit, _n=name, **k: edits.append(_n) or _e(*a, **k)
        )
    args = ["benchmark", "--checkpoint", pipe, "--data", manifest, "--out", tmp_path / "b"]
    assert main([str(a) for a in [*args, "--features", "none"]]) == 0
    cases = json.loads((tmp_path / "b" / "results.json").read_text())["setup"]["cases"]
    assert sorted(edits) == ["heal"] * len(cases) + ["lesion"] * len(cases)


def test_a_killed_benchmark_resumes_without_sampling_its_finished_methods(
    setup, tmp_path, monkeypatch
):
    from usbrain.evaluate import benchmark

    manifest, pipe, _ = setup
    out = tmp_path / "bench"
    args = ["benchmark", "--checkpoint", pipe, "--data", manifest, "--out", out]
    args = [str(a) for a in [*args, "--features", "none"]]

    def killed(*_args, **_kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(benchmark, "round_trip_scores", killed)
        assert main(args) != 0
    finished = tmp_path / ".bench.finished"
    kept = {p.name for p in finished.glob("*.json")}
    assert "heal--usb.json" in kept and "lesion--sdedit-acg.json" in kept
    assert not out.exists()
    usb = json.loads((finished / "heal--usb.json").read_text())

    # Resumed, the finished edits are read back (sampling them again would fail here).
    monkeypatch.setattr(benchmark, "heal", killed)
    monkeypatch.setattr(benchmark, "lesion", killed)
    assert main([*args, "--resume"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["heal"]["usb"]["cases"] == usb["cases"]
    assert "round_trip" in results and not finished.exists()


def test_a_changed_manifest_is_not_resumed_from_the_old_ones_results(setup, tmp_path, monkeypatch):
    from usbrain.evaluate import benchmark

    manifest, pipe, _ = setup
    args = ["benchmark", "--checkpoint", pipe, "--data", manifest, "--out", tmp_path / "b"]
    args = [str(a) for a in [*args, "--features", "none"]]
    sampled = []

    def killed(*_args, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark, "round_trip_scores", killed)
    assert main(args) != 0
    original = manifest.read_bytes()
    try:
        manifest.write_bytes(original + b"\n")  # the same scans, another file
        monkeypatch.setattr(benchmark, "heal", lambda *a, **k: sampled.append(1) or killed())
        assert main([*args, "--resume"]) != 0
    finally:
        manifest.write_bytes(original)
    assert sampled

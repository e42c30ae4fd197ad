"""``usbrain benchmark`` on a small cohort with a micro pipeline (random weights)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tests.conftest import micro_config
from usbrain.cli import main
from usbrain.data.cohort import write_cohort
from usbrain.evaluate.features import HDBETEncoder
from usbrain.evaluate.report import README_BEGIN, README_END


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from usbrain.pipeline import Pipeline

    root = tmp_path_factory.mktemp("bench")
    manifest = write_cohort(root / "cohort", subjects=10, size=32, seed=0)
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
    assert set(results["heal"]) == {"usb", "sdedit", "inpaint", "wm-fill", "mirror-fill"}
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
    for png in re.findall(r"\]\((figures/[^)]+)\)", report):
        assert (out / png).is_file()
    generation = results["generation"]
    assert generation["n_per_set"] == 5 and "HD-BET" in generation["feature_network"]
    assert set(generation["fid"]) == {"real_vs_real", "real_vs_usb", "real_vs_noise"}
    assert f"| real vs usb | {generation['fid']['real_vs_usb']:.2f} |" in report
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
    assert variants["independent"]["generation"]["n"] == 5
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

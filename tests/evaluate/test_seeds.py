from __future__ import annotations

import math

import pytest

from usbrain.evaluate.seeds import (
    combine,
    group_medians,
    group_table,
    headline_table,
    lesion_groups,
    spread,
)


def _results(mae_ratio: float, psnr: float, extra: bool = True) -> dict:
    heal = {"usb": {"median": {"mae_ratio": mae_ratio, "psnr_outside": psnr}, "cases": [{}]}}
    if extra:
        heal["usb"]["median"]["only_here"] = 1.0
    return {"heal": heal, "setup": {"split": "test", "seed": 0}}


def test_every_number_becomes_its_median_and_range_over_seeds():
    combined = combine(
        {2: _results(0.5, 30.0), 0: _results(0.3, float("nan")), 1: _results(0.4, 32.0, False)}
    )
    figure = combined["heal"]["usb"]["median"]["mae_ratio"]
    assert figure["median"] == pytest.approx(0.4) and figure["values"] == [0.3, 0.4, 0.5]
    assert (figure["min"], figure["max"]) == (0.3, 0.5)
    psnr = combined["heal"]["usb"]["median"]["psnr_outside"]
    assert psnr["median"] == 31.0 and (psnr["min"], psnr["max"]) == (30.0, 32.0)  # NaN skipped
    assert "only_here" not in combined["heal"]["usb"]["median"]  # not in every seed
    assert combined["seeds"] == [0, 1, 2] and combined["setup"]["split"] == "test"
    assert len(combined["heal"]["usb"]["cases"]) == 3  # one list of cases per seed
    assert spread(figure, 2) == "0.40 [0.30 – 0.50]"


def test_headline_table_lists_the_figures_the_results_have():
    lines = headline_table(combine({0: _results(0.3, 30.0), 1: _results(0.5, 34.0)}))
    assert lines[0].endswith("over seeds 0, 1 |")
    assert "| heal: in-lesion MAE output / input | 0.400 [0.300 – 0.500] |" in lines
    assert "| heal: PSNR outside the lesion (dB) | 32.0 [30.0 – 34.0] |" in lines
    assert len(lines) == 4
    with pytest.raises(ValueError):
        combine({})
    assert math.isnan(
        combine({0: _results(float("nan"), 1.0)})["heal"]["usb"]["median"]["mae_ratio"]["min"]
    )


def test_headline_table_ends_with_the_downstream_dice_of_each_training_set():
    def results(real: float, usb: float) -> dict:
        sets = {"real": {"dice_mean": real}, "real + usb": {"dice_mean": usb}}
        return {**_results(0.3, 30.0), "downstream": {"sets": sets}}

    lines = headline_table(combine({0: results(0.4, 0.5), 1: results(0.2, 0.6)}))
    assert lines[-2:] == [
        "| downstream: segmenter trained on real, mean test Dice | 0.300 [0.200 – 0.400] |",
        "| downstream: segmenter trained on real + usb, mean test Dice | 0.550 [0.500 – 0.600] |",
    ]


def test_group_medians_split_each_methods_cases_by_kind_then_fold_over_seeds():
    def results(shift: float) -> dict:
        cases = [
            {"subject": "a", "mae_ratio": 0.2 + shift},
            {"subject": "b", "mae_ratio": 0.4 + shift},
            {"subject": "c", "mae_ratio": 0.9 + shift},
            {"subject": "d", "mae_ratio": float("nan")},
        ]
        return {"heal": {"usb": {"cases": cases}, "wm-fill": {"cases": [{"subject": "a"}]}}}

    group_of = {"a": "stroke", "b": "stroke", "c": "wmh"}
    one = group_medians(results(0.0), "heal", "mae_ratio", group_of)
    assert one == {"usb": pytest.approx({"all": 0.4, "stroke": 0.3, "wmh": 0.9})}  # NaN skipped
    folded = combine(
        {s: group_medians(results(s / 10), "heal", "mae_ratio", group_of) for s in (0, 1, 2)}
    )
    assert folded["usb"]["stroke"]["median"] == pytest.approx(0.4)
    lines = group_table(folded, {"all": 4, "stroke": 2, "wmh": 1, "lacunar": 0}, 2)
    assert lines[0] == "| method | all (n = 4) | stroke (n = 2) | wmh (n = 1) | lacunar (n = 0) |"
    assert lines[2] == "| usb | 0.50 [0.40 – 0.60] | 0.40 [0.30 – 0.50] | 1.00 [0.90 – 1.10] | – |"


def test_lesion_groups_read_the_cohorts_kind_and_subtype(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "subject,image,kind,subtype\n"
        "a,a.nii.gz,stroke,territorial\nb,b.nii.gz,stroke,lacunar\n"
        "c,c.nii.gz,wmh,periventricular+deep\nd,d.nii.gz,healthy,\n"
    )
    assert lesion_groups(manifest) == {
        "a": "cortical stroke",
        "b": "lacunar stroke",
        "c": "WMH",
        "d": "",
    }
    (tmp_path / "plain.csv").write_text("subject,image\na,a.nii.gz\n")
    assert lesion_groups(tmp_path / "plain.csv") == {"a": ""}

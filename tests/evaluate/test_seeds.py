from __future__ import annotations

import math

import pytest

from usbrain.evaluate.seeds import combine, headline_table, spread


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

"""What a benchmark run finished, kept for a resumed run (usbrain.evaluate.resume)."""

from __future__ import annotations

import math

import numpy as np

from usbrain.evaluate.resume import FinishedMethods

KEY = {"seed": 0, "cases": ("sub-1", "sub-2")}
RESULTS = {"median": {"mae": 0.25, "psnr": float("inf"), "ratio": float("nan")}, "seconds": 3.0}


def test_a_resumed_run_reads_back_what_was_finished(tmp_path):
    example = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    FinishedMethods(tmp_path / "f", KEY, resume=False).put(
        "heal", "floor: true latent", RESULTS, example
    )
    again = FinishedMethods(tmp_path / "f", KEY, resume=True)
    results, back = again.get("heal", "floor: true latent")
    assert results["median"]["mae"] == 0.25 and math.isinf(results["median"]["psnr"])
    assert math.isnan(results["median"]["ratio"]) and np.array_equal(back, example)
    assert again.get("heal", "usb") is None and again.get("lesion", "floor: true latent") is None


def test_a_method_without_an_example_reads_back_none(tmp_path):
    FinishedMethods(tmp_path, KEY, resume=False).put("round_trip", "usb", RESULTS, None)
    assert FinishedMethods(tmp_path, KEY, resume=True).get("round_trip", "usb")[1] is None


def test_other_settings_or_no_resume_start_afresh(tmp_path):
    FinishedMethods(tmp_path / "f", KEY, resume=False).put("heal", "usb", RESULTS, None)
    other = FinishedMethods(tmp_path / "f", KEY | {"seed": 1}, resume=True)
    assert other.get("heal", "usb") is None
    other.put("heal", "usb", RESULTS, None)
    assert FinishedMethods(tmp_path / "f", KEY, resume=True).get("heal", "usb") is None
    FinishedMethods(tmp_path / "f", KEY, resume=False).put("heal", "usb", RESULTS, None)
    assert FinishedMethods(tmp_path / "f", KEY, resume=False).get("heal", "usb") is None


def test_discard_removes_the_folder(tmp_path):
    finished = FinishedMethods(tmp_path / "f", KEY, resume=False)
    finished.put("heal", "usb", RESULTS, None)
    finished.discard()
    assert not (tmp_path / "f").exists()

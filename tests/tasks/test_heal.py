from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from usbrain.data.nifti import load_image, load_mask
from usbrain.pipeline import Pipeline
from usbrain.tasks.heal import heal


def _heal(pipe, scans, dilation: int, extra: int) -> np.ndarray:
    s = replace(pipe.config.sampling, steps=4)
    s = replace(s, guidance=replace(s.guidance, dilation=dilation, heal_extra_dilation=extra))
    with torch.inference_mode():
        return heal(pipe, load_image(scans["image"]), load_mask(scans["mask"]), s).image.data


def test_heal_releases_its_extra_dilation_on_top_of_the_shared_one(pipeline_dir, scans):
    pipe = Pipeline.from_pretrained(pipeline_dir)
    one_more = _heal(pipe, scans, dilation=1, extra=1)
    assert np.array_equal(one_more, _heal(pipe, scans, dilation=2, extra=0))
    assert not np.array_equal(one_more, _heal(pipe, scans, dilation=1, extra=0))

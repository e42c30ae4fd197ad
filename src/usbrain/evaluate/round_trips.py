"""Round trips through the two edits, on one subject's (healthy, pathological, mask) triple.

What insertion puts in, healing must take out: insert a lesion into the healthy scan, heal it
with the same mask, and compare with the healthy scan. What healing takes out, insertion must be
able to put back: heal the pathological scan, insert a lesion into the result, and compare the
lesion with the real one. Both run with the pipeline's own sampling settings and one seed.

Keys: ``insert_heal_mae`` (in-lesion MAE of the round trip to the healthy scan, scan units),
``insert_heal_mae_ratio`` (that over the in-lesion MAE of the inserted scan alone: the share of
the inserted change still there, 0 when healing undid it), ``insert_heal_psnr`` (whole brain, to
the healthy scan, dB); ``heal_insert_intensity_ratio`` (mean intensity in the re-inserted lesion
over the real lesion's: 1 when it came back as dark as it was) and, with a segmenter,
``heal_insert_seg_dice`` (what it finds in the re-inserted scan against the mask).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from usbrain.data.nifti import Volume
from usbrain.data.scan import Scan
from usbrain.evaluate.regions import region_mae, region_mean, region_psnr
from usbrain.pipeline import Pipeline
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion


def round_trip_scores(
    pipe: Pipeline,
    healthy: Volume,
    sick: Volume,
    mask: Volume,
    seed: int,
    dice: Callable[[np.ndarray], float] | None = None,
    first: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Both round trips for one subject; ``dice`` scores a scan with a lesion inserted (native
    array on ``healthy``'s grid) against ``mask``, if a segmenter is at hand. ``first``: the
    first edits (lesion inserted into ``healthy``, ``sick`` healed; native arrays) if they are
    already made with the pipeline's settings and ``seed`` (the benchmark's own USB edits)."""
    s, space = pipe.config.sampling, pipe.config.space
    from_healthy = Scan.load(healthy, space, mask)
    from_sick = Scan.load(sick, space, mask)
    if first is None:
        first = (
            lesion(pipe, from_healthy, s, seed).image.data,
            heal(pipe, from_sick, s, seed).image.data,
        )
    inserted = Volume(first[0], healthy.affine, header=healthy.header)
    healed = Volume(first[1], sick.affine, header=sick.header)
    # Each second edit reads the first one's output with the first one's brain (an edit keeps
    # its input's brain; one found afresh would lose an inserted lesion darker than its edge).
    back = heal(pipe, Scan.load(inserted, space, mask, from_healthy.brain), s, seed).image.data
    again = lesion(pipe, Scan.load(healed, space, mask, from_sick.brain), s, seed).image.data

    region = mask.data > 0
    brain = from_healthy.brain
    inserted_mae = region_mae(inserted.data, healthy.data, region)
    mae = region_mae(back, healthy.data, region)
    scores = {
        "insert_heal_mae": mae,
        "insert_heal_mae_ratio": mae / inserted_mae if inserted_mae > 0 else float("nan"),
        "insert_heal_psnr": region_psnr(back, healthy.data, brain, float(healthy.data.max())),
        "heal_insert_intensity_ratio": region_mean(again, region) / region_mean(sick.data, region),
    }
    if dice is not None:
        scores["heal_insert_seg_dice"] = dice(again)
    return scores

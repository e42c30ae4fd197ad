"""Round trip native → model space → native for the MNI152 T1 stored in every one of the 48 axis
orders on 0.9×1.1×1.3 mm voxels, at the paper preset (160³, 1 mm). Prints, per order, whether
the affine and shape come back exactly, the correlation with the input inside the brain voxels
the model grid covers, and the share of brain voxels the 160 mm grid crops.

    python bench/round_trip.py [--orders N]
"""

from __future__ import annotations

import argparse
import itertools

import nibabel as nib
import numpy as np
from nilearn import datasets

from usbrain.config import space_preset
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import (
    VolumeKind,
    brain_mask,
    preprocess,
    resample,
    to_native,
    voxels_outside_model_grid,
)

SPACING = (0.9, 1.1, 1.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=48, help="how many axis orders to run")
    args = parser.parse_args()
    t1 = datasets.load_mni152_template(resolution=1)
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = t1.affine[:3, 3]
    shape = tuple(int(n / z) for n, z in zip(t1.shape, SPACING, strict=True))
    base = resample(t1.get_fdata().astype(np.float32), t1.affine, affine, shape) * 800
    orders = [
        np.array([[a, f] for a, f in zip(perm, flips, strict=True)])
        for perm in itertools.permutations(range(3))
        for flips in itertools.product((1, -1), repeat=3)
    ][: args.orders]
    print(f"{'order':<6} {'affine+shape':<13} {'corr':>7} {'cropped':>8}")
    worst = 1.0
    for ornt in orders:
        data = nib.orientations.apply_orientation(base, ornt)
        native = Volume(
            np.ascontiguousarray(data, np.float32),
            affine @ nib.orientations.inv_ornt_aff(ornt, base.shape),
        )
        prepared = preprocess(native, space_preset("paper"))
        back = to_native(prepared.image, prepared.geometry, VolumeKind.IMAGE)
        exact = back.shape == native.shape and np.array_equal(
            prepared.geometry.native, native.affine
        )
        brain = brain_mask(native.data)
        cut = voxels_outside_model_grid(
            Volume(brain.astype(np.uint8), native.affine), prepared.geometry
        )
        kept = brain & (back > 0)
        corr = float(np.corrcoef(back[kept], native.data[kept])[0, 1])
        worst = min(worst, corr)
        code = "".join(nib.orientations.ornt2axcodes(ornt))
        print(
            f"{code:<6} {'exact' if exact else 'DIFFERS':<13} {corr:7.4f} {cut / brain.sum():8.2%}"
        )
    print(f"summary: {len(orders)} axis orders, lowest correlation {worst:.4f}")


if __name__ == "__main__":
    main()

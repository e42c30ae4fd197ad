"""The README's figure of the shipped ``base`` model, on subjects it never saw.

Two held-out subjects of its (rich) cohort, numbered far past the 200 it trained on: a stroke,
healed with its mask and set beside its true healthy scan; its healthy scan given a lesion
where a white-matter-lesion subject's mask says; a brain generated for that mask; and two
generated (brain, lesion) pairs. Writes ``docs/figures/base_edits.png`` and
``docs/figures/base_generated.png`` (replacing them).

    python bench/base_figure.py [--checkpoint base] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from usbrain.data.cohort import VARIATIONS, load_template, make_subject
from usbrain.data.nifti import Volume
from usbrain.data.scan import Scan
from usbrain.pipeline import Pipeline
from usbrain.tasks.condition import condition
from usbrain.tasks.generate import generate
from usbrain.tasks.heal import heal
from usbrain.tasks.lesion import lesion
from usbrain.viz import comparison, save_figure

STROKE, WMH = 10_000, 10_003  # subject numbers ≡ 0 / 3 mod 5 are a stroke / WMH
OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="base")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipe = Pipeline.from_pretrained(args.checkpoint)
    sampling = pipe.config.sampling
    template, rich = load_template(), VARIATIONS["rich"]
    stroke = make_subject(template, STROKE, 100, 0, rich)
    wmh = make_subject(template, WMH, 100, 0, rich)
    affine = stroke.affine

    def vol(data) -> Volume:
        return Volume(data, affine)

    space = pipe.config.space
    sick = Scan.load(vol(stroke.pathological), space, vol(stroke.mask))
    healed = heal(pipe, sick, sampling, args.seed)
    inserted = lesion(
        pipe, Scan.load(vol(stroke.healthy), space, vol(wmh.mask)), sampling, args.seed
    )
    (conditioned,) = condition(pipe, vol(wmh.mask), 1, sampling, args.seed)
    rows = [
        (f"held-out stroke ({stroke.lesion_ml:.0f} mL)", stroke.pathological, stroke.mask),
        ("healed by base", healed.image.data, stroke.mask),
        ("its true healthy scan", stroke.healthy, None),
        (f"WMH inserted ({wmh.lesion_ml:.0f} mL mask)", inserted.image.data, wmh.mask),
        ("brain generated for that mask", conditioned.image.data, wmh.mask),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    fig = comparison(rows, affine, title="base on held-out subjects (2 mm)")
    save_figure(fig, OUT / "base_edits.png", overwrite=True)
    pairs = generate(pipe, 2, sampling, args.seed)
    fig = comparison(
        [(f"generated pair {i}", p.image.data, p.mask.data) for i, p in enumerate(pairs)],
        pairs[0].image.affine,
        title="base: (brain, lesion) pairs from noise",
    )
    save_figure(fig, OUT / "base_generated.png", overwrite=True)
    print(f"written: {OUT / 'base_edits.png'}, {OUT / 'base_generated.png'}")


if __name__ == "__main__":
    main()

from __future__ import annotations

import numpy as np
import pytest

from usbrain.data import atrophy, cohort


def _ball(shape: tuple[int, int, int], centre, radius: float) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(axis=0) <= radius**2


def test_central_csf_keeps_deep_central_fluid_and_drops_sulci():
    shape = (40, 40, 40)
    brain = _ball(shape, (20, 20, 20), 18)
    gm = np.full(shape, 0.5, np.float32)
    wm = np.full(shape, 0.5, np.float32)
    for centre in ((20, 20, 20), (20, 20, 37)):  # a ventricle, and a sulcus at the edge
        gm[_ball(shape, centre, 3)] = wm[_ball(shape, centre, 3)] = 0.0
    offset = (np.indices(shape) - 20).astype(float) * 2.0
    found = atrophy.central_csf(gm, wm, brain, offset, spacing=2.0)
    assert found[20, 20, 20] and not found[20, 20, 36]


def test_ventricle_pull_points_into_the_ventricles_with_unit_peak():
    shape = (32, 32, 32)
    pull = atrophy.ventricle_pull(_ball(shape, (16, 16, 16), 4), spacing=2.0)
    magnitude = np.sqrt((pull**2).sum(axis=0))
    assert magnitude.max() == pytest.approx(1.0, abs=1e-5)
    assert pull[0, 10, 16, 16] > 0 > pull[0, 22, 16, 16]  # on either side, toward the centre
    assert magnitude[0, 0, 0] < 0.05  # fades far away
    assert not atrophy.ventricle_pull(np.zeros(shape, bool), 2.0).any()


def test_widen_csf_spreads_dark_fluid_into_tissue_beside_it_only():
    image = np.ones((9, 9, 9), np.float32)
    image[4, 4, 4] = 0.1  # a dark sulcus in bright tissue
    weight = np.ones_like(image)
    widened = atrophy.widen_csf(image, weight)
    assert widened[4, 4, 5] == pytest.approx(0.1) and widened[4, 5, 5] == 1.0  # face, not edge
    assert widened[0, 0, 0] == 1.0  # homogeneous tissue is left as it is
    assert np.array_equal(atrophy.widen_csf(image, np.zeros_like(image)), image)
    half = atrophy.widen_csf(image, 0.5 * weight)
    assert half[4, 4, 5] == pytest.approx(0.55)


def test_hippocampal_weight_peaks_at_either_hippocampus():
    points = np.array(
        [[-26.0, 26.0, 0.0, -26.0], [-22.0, -22.0, -22.0, 10.0], [-14, -14, -14, -14]]
    )
    weight = atrophy.hippocampal_weight(points)
    assert weight[0] == weight[1] == 1.0
    assert weight[2] == 0.0 and weight[3] == 0.0  # the midline; 32 mm in front


def test_cortical_ribbon_is_the_outer_grey_matter():
    gm = np.ones((3,), np.float32)
    weight = atrophy.cortical_ribbon(gm, np.array([2.0, 9.0, 20.0]))
    assert weight.tolist() == [1.0, 0.5, 0.0]


@pytest.fixture(scope="module")
def atrophied_and_not():
    template = cohort.load_template()
    degrees = cohort._atrophy_degrees
    out = {}
    try:
        for degree in (0.0, 1.0):
            cohort._atrophy_degrees = lambda rng, d=degree: (d, d, d, d)
            out[degree] = cohort.make_subject(template, 4, 48, 0, cohort.VARIATIONS["rich"])
    finally:
        cohort._atrophy_degrees = degrees
    return out


def test_rich_atrophy_enlarges_the_ventricles_and_darkens_the_cortex(atrophied_and_not):
    young, old = atrophied_and_not[0.0], atrophied_and_not[1.0]
    assert old.atrophy == 1.0 and young.atrophy == 0.0
    centre = np.zeros(old.brain.shape, bool)
    centre[16:32, 14:34, 20:34] = True

    def dark(s):  # CSF: below a third of white matter
        return (s.healthy < 800 / 3) & (s.brain > 0)

    assert (dark(old) & centre).sum() > 1.3 * (dark(young) & centre).sum()
    assert dark(old).sum() > 1.3 * dark(young).sum()
    assert abs(int(old.brain.sum()) - int(young.brain.sum())) < 0.05 * young.brain.sum()


def test_rich_variation_is_recorded_and_demo_has_no_atrophy(tmp_path):
    manifest = cohort.write_cohort(tmp_path / "c", 2, size=24, progress=False, variation="rich")
    header, *rows = manifest.read_text().splitlines()
    assert header.endswith(",subtype,atrophy")
    assert all(0.0 <= float(r.split(",")[-1]) <= 1.0 for r in rows)
    assert cohort.make_subject(cohort.load_template(), 0, 24, 0).atrophy == 0.0
    with pytest.raises(cohort.ConfigError, match="--variation"):
        cohort.write_cohort(tmp_path / "d", 1, size=24, variation="huge")

"""The localisation measures on maps built so that the right answer is known."""

import math

import pytest
import torch
from torch import nn

from deconvnet.config import DataConfig, ModelConfig
from deconvnet.data import VOCSegmentation, make_synthvoc
from deconvnet.explain import localisation as loc
from deconvnet.model.network import DeconvNet


def square_mask(h=20, w=20, top=5, left=5, side=4):
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_pointing_hit_inside_outside_and_tolerance():
    mask = square_mask()  # rows/cols 5..8
    m = torch.zeros(20, 20)
    m[6, 6] = 1.0
    assert loc.pointing_hit(m, mask) == 1.0
    m = torch.zeros(20, 20)
    m[6, 11] = 1.0  # 3 pixels right of the mask's last column (8)
    assert loc.pointing_hit(m, mask) == 0.0
    assert loc.pointing_hit(m, mask, tolerance=2) == 0.0
    assert loc.pointing_hit(m, mask, tolerance=3) == 1.0


def test_pointing_ties_score_the_share_of_maxima_that_hit():
    mask = square_mask()
    assert loc.pointing_hit(torch.ones(20, 20), mask) == pytest.approx(16 / 400)  # a flat map: the area share
    m = torch.zeros(20, 20)
    m[6, 6] = m[15, 15] = 2.0  # one maximum on the object, one off it
    assert loc.pointing_hit(m, mask) == 0.5


def test_pointing_uses_the_channel_sum_and_refuses_bad_input():
    mask = square_mask()
    m = torch.zeros(3, 20, 20)
    m[0, 15, 15] = 1.0  # the largest single channel value, but ...
    m[:, 6, 6] = 0.5  # ... the largest sum over channels
    assert loc.pointing_hit(m, mask) == 1.0
    with pytest.raises(ValueError, match="empty mask"):
        loc.pointing_hit(m, torch.zeros(20, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        loc.pointing_hit(m, torch.ones(10, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        loc.pointing_hit(torch.full((20, 20), float("nan")), mask)


def test_energy_inside_counts_positive_mass_only():
    mask = square_mask()
    m = torch.zeros(20, 20)
    m[mask] = 1.0  # 16 units inside
    m[0, :4] = 4.0  # 16 units outside
    m[15:, 15:] = -100.0  # negative evidence is not energy
    assert loc.energy_inside(m, mask) == pytest.approx(0.5)
    assert loc.energy_inside(torch.ones(20, 20), mask) == pytest.approx(16 / 400)


def test_an_empty_map_scores_like_a_flat_one():
    mask = square_mask()
    empty = -torch.rand(3, 20, 20)  # nothing positive anywhere
    assert loc.is_empty(empty) and loc.is_empty(torch.zeros(20, 20)) and not loc.is_empty(torch.ones(20, 20))
    assert loc.energy_inside(empty, mask) == loc.energy_inside(torch.ones(20, 20), mask) == pytest.approx(16 / 400)
    assert loc.pointing_hit(torch.zeros(20, 20), mask) == pytest.approx(16 / 400)


def test_centre_gaussian_peaks_at_the_centre():
    g = loc.centre_gaussian(21, 31)
    assert g.shape == (21, 31)
    assert divmod(int(g.argmax()), 31) == (10, 15)
    assert loc.pointing_hit(g, square_mask(21, 31, top=9, left=14, side=3)) == 1.0


def test_map_correlation():
    a = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    assert loc.map_correlation(a, 3 * a + 1) == pytest.approx(1.0)
    assert loc.map_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(loc.map_correlation(a, torch.ones(8, 8)))
    with pytest.raises(ValueError, match="different sizes"):
        loc.map_correlation(a, torch.ones(4, 4))


def test_periodic_share_finds_a_grid_and_not_noise():
    tile = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    grid = tile.repeat(6, 6)  # (48, 48), a pure period-8 pattern
    assert loc.periodic_share(grid, 8) == pytest.approx(1.0)
    noise = torch.randn(3, 256, 256, generator=torch.Generator().manual_seed(1))
    assert loc.periodic_share(noise, 32) == pytest.approx(1 / 64, rel=0.2)  # chance: 1 / (number of tiles)
    assert loc.periodic_share(grid + 0.0 * noise[0, :48, :48], 8) > 0.99
    with pytest.raises(ValueError, match="tiles"):
        loc.periodic_share(grid, 7)


def test_other_class_is_absent_and_never_background():
    assert loc.other_class([3, 4], 21, 3) == 5
    assert loc.other_class([20], 21, 20) == 1  # wraps round, skipping background
    with pytest.raises(ValueError, match="every one"):
        loc.other_class([1, 2], 3, 1)


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    cfg = DataConfig(train_images=1, val_images=3, image_size=64, min_scale=0.3, void_px=1, proposal_side=64)
    root = tmp_path_factory.mktemp("synth")
    make_synthvoc(cfg, root, workers=1, progress=False)
    return VOCSegmentation(root, "val")


def test_localise_rows_cover_every_object_target_and_method(val):
    torch.manual_seed(0)
    model = DeconvNet(ModelConfig(width=1 / 16, input_size=64, fc_kernel=2, pretrained=False)).eval()
    model.apply(lambda m: nn.init.normal_(m.weight, std=0.3) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
                else None)  # a random net with a live signal, so no map is all zero
    rows = loc.localise(model, val, objects=2, layer="encoder.blocks.4", tolerance=1, per_image=1)
    objects = {(r["image"], r["object"]) for r in rows}
    assert len(objects) == 2 and len({image for image, _ in objects}) == 2  # one object from each of two images
    per_object = 2 * (2 * len(loc.METHODS) + len(loc.BASELINES))  # targets x (own + other per method + baselines)
    assert len(rows) == 2 * per_object
    for r in rows:
        assert 0 <= r["hit"] <= 1 and 0 <= r["energy"] <= 1 and isinstance(r["empty"], bool)
        assert (r["class_used"] == "other") == ("r_own" in r)
    uniform = [r for r in rows if r["method"] == "uniform"]
    assert all(r["energy"] == pytest.approx(r["area"]) for r in uniform)
    with pytest.raises(ValueError, match="valid targets"):
        loc.localise(model, val, objects=1, layer="encoder.blocks.4", tolerance=1, targets=["box"])
    # objects explained together or one at a time: the same numbers (these images pad to the same size)
    one_by_one = loc.localise(model, val, objects=2, layer="encoder.blocks.4", tolerance=1, per_image=1, batch=1)
    def key(r):
        return r["image"], r["object"], r["target"], r["method"], r["class_used"]

    one_by_one, rows = sorted(one_by_one, key=key), sorted(rows, key=key)
    assert [key(r) for r in one_by_one] == [key(r) for r in rows]
    for a, b in zip(one_by_one, rows, strict=True):
        assert a["hit"] == pytest.approx(b["hit"]) and a["energy"] == pytest.approx(b["energy"], abs=1e-6)


def test_chapter_7_figures_draw():
    import matplotlib.pyplot as plt

    from deconvnet.book import plot

    image = torch.rand(3, 16, 16)
    maps = {"vanilla": torch.randn(2, 3, 16, 16), "gradcam": torch.rand(2, 1, 16, 16)}
    region = square_mask(16, 16)
    side = {"ground truth": plot.colour_mask(region.numpy().astype(int))}
    fig = plot.saliency_grid(image, maps, [(1, "a", 0.5), (2, "b", 0.1)], region=region, side=side, size=1.5)
    assert len(fig.axes) == 6 and fig.axes[3].images  # the side panel sits under the input
    rows = [dict(target="image", method=m, class_used=u, hit=0.5, energy=0.2) for m in ("vanilla", "gradcam")
            for u in ("own", "other")] + [dict(target="image", method="uniform", class_used="own", hit=0.1,
                                               energy=0.1)]
    bars = plot.localisation_bars(rows, baselines=("uniform",), tolerance=3)
    assert len(bars.axes) == 2
    for f in (fig, bars):
        f.canvas.draw()
        plt.close(f)


def test_summary_table_means_per_method():
    rows = [
        dict(target="image", method="gradcam", class_used="own", hit=1.0, energy=0.5, empty=False),
        dict(target="image", method="gradcam", class_used="own", hit=0.0, energy=0.3, empty=True),
        dict(target="image", method="gradcam", class_used="other", hit=0.0, energy=0.1, empty=False, r_own=0.2),
        dict(target="image", method="uniform", class_used="own", hit=0.1, energy=0.1, empty=False),
        dict(target="mask", method="gradcam", class_used="own", hit=0.0, energy=0.0, empty=False),
    ]
    table = loc.summary_table(rows, "image")
    assert list(table.index) == ["gradcam", "uniform"]
    assert table.loc["gradcam", "pointing, own class"] == 0.5
    assert table.loc["gradcam", "energy inside, own class"] == pytest.approx(0.4)
    assert table.loc["gradcam", "r(own, absent)"] == 0.2
    assert table.loc["gradcam", "empty maps"] == pytest.approx(1 / 3)
    assert math.isnan(table.loc["uniform", "pointing, absent class"])
    with pytest.raises(ValueError, match="no rows"):
        loc.summary_table(rows, "box")


def pointing_rows(hits: dict[str, list[float]], objects_per_image: int = 2) -> list[dict]:
    """Image-target rows: ``hits[name][i]`` for object i, objects grouped ``objects_per_image`` to a scene."""
    rows = []
    for name, values in hits.items():
        for i, hit in enumerate(values):
            for used in ("own",) if name in loc.BASELINES else ("own", "other"):
                rows.append(dict(target="image", method=name, class_used=used, image=f"scene{i // objects_per_image}",
                                 object=i % objects_per_image, hit=hit if used == "own" else 1 - hit))
    return rows


def test_pointing_intervals_pair_by_object_and_read_the_verdict_from_the_difference():
    n = 10
    always, never = [1.0] * n, [0.0] * n
    result = loc.pointing_intervals(pointing_rows({"gradcam": always, "centre Gaussian": never, "uniform": never}))
    assert result["objects"] == n and result["images"] == n // 2 and result["best"] == "gradcam"
    assert result["hit"]["gradcam"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    d = result["difference"]["gradcam"]
    assert d == {"value": 1.0, "low": 1.0, "high": 1.0}  # every resample: +1, a degenerate interval
    assert result["verdict"]["gradcam"] == "supported"
    # the absent class's rows (1 - hit here) are compared with the same baseline rows
    absent = loc.pointing_intervals(pointing_rows({"gradcam": always, "centre Gaussian": never, "uniform": never}),
                                    class_used="other")
    assert absent["difference"]["gradcam"]["value"] == 0.0 and absent["verdict"]["gradcam"] == "inconclusive"

    # identical to the better baseline: no difference, whatever the resample, so nothing can be claimed
    mixed = [1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.25, 0.0, 1.0]
    same = loc.pointing_intervals(pointing_rows({"gradcam": mixed, "vanilla": never, "centre Gaussian": mixed,
                                                 "uniform": never}))
    assert same["baseline"] == "centre Gaussian"  # the better of the two baselines
    assert same["difference"]["gradcam"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert same["verdict"]["gradcam"] == "inconclusive"
    assert same["verdict"]["vanilla"] == "not supported"  # never hits, where the baseline often does
    hit = same["hit"]["gradcam"]
    assert hit["value"] == pytest.approx(sum(mixed) / n) and hit["low"] < hit["value"] < hit["high"]


def test_pointing_intervals_resample_scenes_not_objects():
    # two objects per scene that always agree: resampling scenes gives a wider interval than 2n independent objects
    hits = [1.0, 1.0, 0.0, 0.0] * 5
    scenes = loc.pointing_intervals(pointing_rows({"gradcam": hits, "uniform": [0.0] * 20}, 2))["hit"]["gradcam"]
    objects = loc.pointing_intervals(pointing_rows({"gradcam": hits, "uniform": [0.0] * 20}, 1))["hit"]["gradcam"]
    assert scenes["value"] == objects["value"] == 0.5
    assert scenes["high"] - scenes["low"] > objects["high"] - objects["low"]


def test_pointing_intervals_refuse_unpaired_rows():
    rows = pointing_rows({"gradcam": [1.0, 0.0], "uniform": [0.0, 0.0]})
    with pytest.raises(ValueError, match="paired"):
        loc.pointing_intervals([r for r in rows if not (r["method"] == "gradcam" and r["object"] == 1)])
    with pytest.raises(ValueError, match="no rows"):
        loc.pointing_intervals(rows, "mask")

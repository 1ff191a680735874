"""Tests of the cutout QA features (:mod:`stronglens.cutouts.qa`) and the sample mosaic
(:func:`stronglens.cutouts.plots.mosaic_png`).

Every feature is compared with an independent single-image reference (``np.percentile``,
``np.rot90``, a full complex ``np.fft.fft2``, explicit distance grids) on random and adversarial
cutouts; the usability verdict on planted defects; physical sanity on images with known answers
(white noise, symmetric and shifted blobs, Gaussian aperture fluxes, a known sky level, the renderer's
own noise level); invariance to batching and order; and the throughput (printed, with a loose floor
that only a per-pixel Python loop would miss).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from stronglens.cutouts import plots, qa

SIDE = 101
CENTRE = 50
SMALL = qa.QAConfig(aperture_radii=(2, 3, 5), background_edge_margins=(1.0, 3.0), asymmetry_radius=5.0)


# --------------------------------------------------------------------------------------------------
# independent reference: one band of one cutout at a time
# --------------------------------------------------------------------------------------------------


def reference_band(image: np.ndarray, config: qa.QAConfig) -> dict[str, float]:
    """The documented features of one 2D band, computed the obvious way."""
    side = image.shape[0]
    centre = side // 2
    img = image.astype(np.float64)
    finite = np.isfinite(img)
    values = img[finite]
    yy, xx = np.meshgrid(np.arange(side) - centre, np.arange(side) - centre, indexing="ij")
    dist = np.sqrt(xx**2 + yy**2)
    out: dict[str, float] = {
        "nonfinite_frac": 1.0 - finite.mean(),
        "zero_frac": float((img == 0).mean()),
    }
    if values.size:
        out["pix_min"], out["pix_max"] = values.min(), values.max()
        out["p01"], out["p50"], out["p99"] = np.percentile(values, [1, 50, 99])
        out["mad"] = float(np.median(np.abs(values - np.median(values))))
    else:
        out.update(dict.fromkeys(("pix_min", "pix_max", "p01", "p50", "p99", "mad"), np.nan))
    inner = centre - config.background_edge_margins[1]
    outer = centre - config.background_edge_margins[0]
    ring = img[(dist >= inner) & (dist <= outer)]
    ring = ring[np.isfinite(ring)]
    background = float(np.median(ring)) if ring.size else np.nan
    out["background"] = background
    residual = np.where(finite, img - background, 0.0)
    for r in config.aperture_radii:
        out[f"core_flux_r{r}"] = float(residual[dist <= r].sum())
    inside = dist <= config.asymmetry_radius
    rotated = np.rot90(residual, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["asymmetry"] = np.abs(residual - rotated)[inside].sum() / (2 * np.abs(residual)[inside].sum())
        power = np.abs(np.fft.fft2(residual)) ** 2
        fy, fx = np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side), indexing="ij")
        high = np.hypot(fx, fy) > config.hf_cutoff_cycles_per_pix
        out["hf_power_frac"] = (power[high].sum()) / (power.sum() - power[0, 0])
    return out


def assert_matches_reference(cutouts: np.ndarray, config: qa.QAConfig | None = None) -> pd.DataFrame:
    config = config or qa.QAConfig()
    table = qa.qa_features(cutouts, config=config).to_pandas()
    assert len(table) == cutouts.shape[0] * 3
    for i in range(cutouts.shape[0]):
        for b, band in enumerate("grz"):
            row = table.iloc[3 * i + b]
            assert (row["sample_id"], row["band"]) == (i, band)
            ref = reference_band(cutouts[i, :, :, b], config)
            scale = float(
                np.nansum(np.abs(np.where(np.isfinite(cutouts[i, :, :, b]), cutouts[i, :, :, b], 0)))
            )
            for name, expected in ref.items():
                got = row[name]
                where = f"cutout {i} band {band} {name}"
                if np.isnan(expected):
                    assert np.isnan(got), f"{where}: {got} != NaN"
                elif name.startswith("core_flux"):
                    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6 * scale + 1e-12), where
                elif name in ("asymmetry", "hf_power_frac"):
                    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6), where
                else:
                    assert got == pytest.approx(expected, rel=1e-6, abs=1e-30), where
    return table


def blob(
    side: int = SIDE, sigma: float = 2.5, flux: float = 10.0, dx: float = 0.0, dy: float = 0.0
) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side] - side // 2
    image = np.exp(-((xx - dx) ** 2 + (yy - dy) ** 2) / (2 * sigma**2))
    return flux * image / (2 * np.pi * sigma**2)


def galaxies_with_noise(rng: np.random.Generator, count: int, side: int = SIDE) -> np.ndarray:
    cutouts = rng.normal(0.0, 1.0, (count, side, side, 3)) * rng.uniform(0.002, 0.02, (count, 1, 1, 3))
    for i in range(count):
        shift = rng.uniform(-4, 4, 2)
        cutouts[i] += blob(side, rng.uniform(1.5, 5), rng.uniform(1, 50), *shift)[:, :, None] * [0.4, 1, 1.8]
    return (cutouts + rng.normal(0, 0.003, (count, 1, 1, 3))).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# features against the reference
# --------------------------------------------------------------------------------------------------


def test_features_match_reference_on_random_galaxies() -> None:
    rng = np.random.default_rng(11)
    table = assert_matches_reference(galaxies_with_noise(rng, 12))
    assert table["is_usable"].all() and table["unusable_reason"].isna().all()
    assert list(table.columns) == [
        "sample_id",
        "band",
        *qa.QAConfig().feature_columns,
        "is_usable",
        "unusable_reason",
    ]


def test_features_match_reference_on_adversarial_cutouts() -> None:
    rng = np.random.default_rng(12)
    base = galaxies_with_noise(rng, 10)
    base[0, 10:20, 30:60, 0] = np.nan  # hole outside the core
    base[1, 48:53, 48:53, 1] = np.nan  # hole in the core
    base[2, ::7, ::5, 2] = np.inf
    base[2, 3, 3, 0] = -np.inf
    base[3, :, :40, :] = 0.0  # no coverage on the left
    base[4, :, :, 1] = 0.5  # flat band
    base[5, :, :, 2] = np.nan  # band entirely missing
    base[6] = np.round(base[6] * 200) / 200  # heavy ties
    base[7, 60:, :, :] = np.nan  # background annulus partly missing
    base[8, 5, 5, 0] = 3e7  # absurd value
    base[9] = 0.0  # all zero
    assert_matches_reference(base)


def test_float64_input_and_other_sizes_match_reference() -> None:
    rng = np.random.default_rng(13)
    cutouts = galaxies_with_noise(rng, 4, side=21).astype(np.float64) * 1e3
    cutouts[0, 2, 2, 0] = 1e60  # beyond float32: must stay finite in float64 input
    table = assert_matches_reference(cutouts, SMALL)
    assert table.loc[0, "pix_max"] == 1e60 and table.loc[0, "nonfinite_frac"] == 0.0


def test_batching_and_order_do_not_change_results() -> None:
    rng = np.random.default_rng(14)
    cutouts = galaxies_with_noise(rng, 9)
    cutouts[4, 50, 50, 2] = np.nan
    whole = qa.qa_features(cutouts, config=qa.QAConfig(batch_size=256))
    for batch in (1, 4):
        assert qa.qa_features(cutouts, config=qa.QAConfig(batch_size=batch)).equals(whole)
    order = rng.permutation(9)
    shuffled = qa.qa_features(cutouts[order], ids=order).to_pandas().sort_values(["sample_id", "band"])
    pd.testing.assert_frame_equal(shuffled.reset_index(drop=True), whole.to_pandas())


def test_ids_bands_and_empty_input() -> None:
    rng = np.random.default_rng(15)
    cutouts = galaxies_with_noise(rng, 2)
    table = qa.qa_features(cutouts[..., ::-1], bands=("z", "r", "g"), ids=pa.array(["a", "b"]))
    assert table["sample_id"].to_pylist() == ["a"] * 3 + ["b"] * 3
    assert table["band"].to_pylist() == ["z", "r", "g"] * 2
    # the z row of the reversed cutout is the z channel of the original
    original = qa.qa_features(cutouts).to_pandas()
    assert table.to_pandas().loc[0, "p99"] == original.loc[2, "p99"]
    empty = qa.qa_features(np.zeros((0, SIDE, SIDE, 3), np.float32))
    assert empty.num_rows == 0 and empty.column_names == table.column_names


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        ((2, SIDE, SIDE), {}, "expected \\(N, side, side, 3\\)"),
        ((2, SIDE, 99, 3), {}, "expected"),
        ((2, SIDE, SIDE, 3), {"bands": ("g", "r")}, "expected \\(N, side, side, 2\\)"),
        ((2, 100, 100, 3), {}, "even"),
        ((2, SIDE, SIDE, 3), {"ids": [1, 2, 3]}, "3 ids for 2 cutouts"),
        ((1, 31, 31, 3), {}, "overlap the background annulus"),
    ],
)
def test_bad_inputs_name_the_problem(shape: tuple[int, ...], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        qa.qa_features(np.zeros(shape, np.float32), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aperture_radii": ()},
        {"aperture_radii": (4.5,)},
        {"aperture_radii": (0, 4)},
        {"background_edge_margins": (16.0, 4.0)},
        {"hf_cutoff_cycles_per_pix": 0.5},
        {"asymmetry_radius": 0.0},
        {"batch_size": 0},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="QAConfig"):
        qa.QAConfig(**kwargs)


def test_config_given_lists_works_like_tuples() -> None:
    rng = np.random.default_rng(22)
    cutouts = galaxies_with_noise(rng, 2)
    listed = qa.QAConfig(aperture_radii=[3, 6], background_edge_margins=[4.0, 16.0])  # type: ignore[arg-type]
    table = qa.qa_features(cutouts, config=listed)
    assert table.equals(qa.qa_features(cutouts, config=qa.QAConfig(aperture_radii=(3, 6))))
    assert "core_flux_r6" in table.column_names and "core_flux_r12" not in table.column_names


# --------------------------------------------------------------------------------------------------
# usability
# --------------------------------------------------------------------------------------------------


def test_usability_verdicts_name_band_value_and_threshold() -> None:
    rng = np.random.default_rng(16)
    cutouts = galaxies_with_noise(rng, 8)
    cutouts[1, 0:3, :, 0] = np.nan  # 3 rows = 2.97% > 2%, outside the core
    cutouts[2, 0:2, :, 0] = np.nan  # 2 rows = 1.98%: tolerated
    cutouts[3, 45, 52, 2] = np.nan  # one pixel inside r = 12
    cutouts[4, :, :6, 1] = 0.0  # 5.94% zeros
    cutouts[5, :, :, 2] = 0.25  # flat
    cutouts[6, 0, 0, 1] = -2e5  # absurd
    cutouts[7, :, :, :] = np.nan  # nothing at all
    table = qa.qa_features(cutouts).to_pandas()
    verdict = table.drop_duplicates("sample_id").set_index("sample_id")
    assert (table.groupby("sample_id")["is_usable"].nunique() == 1).all()  # per cutout, on every band row
    assert verdict["is_usable"].tolist() == [True, False, True, False, False, False, False, False]
    reason = verdict["unusable_reason"]
    assert reason[1] == "g: nonfinite_frac 0.0297 > 0.02"
    assert reason[3] == "z: non-finite pixels within r=12 px of the centre (nonfinite_frac 9.803e-05)"
    assert reason[4] == "r: zero_frac 0.05941 > 0.05 (no coverage)"
    assert reason[5] == "z: MAD 0 <= 0 (flat band)"
    assert reason[6] == "r: |pixel| 2e+05 > 1e+05 nanomaggies"
    assert reason[7].split("; ") == [
        "g: nonfinite_frac 1 > 0.02",
        "r: nonfinite_frac 1 > 0.02",
        "z: nonfinite_frac 1 > 0.02",
        "g: non-finite pixels within r=12 px of the centre (nonfinite_frac 1)",
        "r: non-finite pixels within r=12 px of the centre (nonfinite_frac 1)",
        "z: non-finite pixels within r=12 px of the centre (nonfinite_frac 1)",
    ]  # NaN MAD / extremes are not "flat" or "absurd": the missing data is the reason
    assert pd.isna(reason[0]) and pd.isna(reason[2])


def test_usability_thresholds_are_parameters() -> None:
    rng = np.random.default_rng(17)
    cutouts = galaxies_with_noise(rng, 1)
    cutouts[0, 0:3, :, 0] = np.nan
    cutouts[0, 0, 0, 1] = 50.0
    strict = qa.QAConfig(max_nonfinite_frac=0.05, max_abs_value=10.0)
    assert (
        qa.qa_features(cutouts, config=strict)["unusable_reason"][0].as_py()
        == "r: |pixel| 50 > 10 nanomaggies"
    )


# --------------------------------------------------------------------------------------------------
# physical sanity
# --------------------------------------------------------------------------------------------------


def test_white_noise_and_smooth_images_bracket_high_frequency_power() -> None:
    rng = np.random.default_rng(18)
    noise = rng.normal(0, 0.01, (20, SIDE, SIDE, 3)).astype(np.float32)
    table = qa.qa_features(noise).to_pandas()
    # white noise spreads power evenly over the frequency square: the fraction above k = 0.25
    # cycles/pixel is the area outside that circle, 1 - pi 0.25^2
    assert table["hf_power_frac"].mean() == pytest.approx(1 - np.pi * 0.25**2, abs=0.005)
    assert table["mad"].mean() * 1.4826 == pytest.approx(0.01, rel=0.02)
    smooth = np.repeat(blob(sigma=3.0)[None, :, :, None], 3, axis=3).astype(np.float32)
    assert qa.qa_features(smooth)["hf_power_frac"].to_numpy().max() < 1e-4


def test_asymmetry_of_centred_and_offset_sources() -> None:
    images = np.stack([blob(), blob(dx=4.0), blob(dx=2.0, dy=-3.0) + blob(flux=5.0)], axis=0)
    table = qa.qa_features(np.repeat(images[..., None], 3, axis=3).astype(np.float32)).to_pandas()
    asym = table.groupby("sample_id")["asymmetry"].first()
    assert asym[0] < 1e-6
    assert asym[1] > 0.6 and 0.1 < asym[2] < asym[1]


def test_aperture_fluxes_and_background_of_a_known_image() -> None:
    sky = 0.7
    flux, sigma = 40.0, 3.0
    image = (blob(sigma=sigma, flux=flux) + sky)[None, :, :, None].repeat(3, axis=3).astype(np.float32)
    row = qa.qa_features(image).to_pandas().iloc[0]
    assert row["background"] == pytest.approx(sky, rel=1e-6)
    for r in (4, 8, 12):
        enclosed = flux * (1 - np.exp(-(r**2) / (2 * sigma**2)))  # continuous circular Gaussian
        assert row[f"core_flux_r{r}"] == pytest.approx(enclosed, rel=0.03)


def test_rendered_cutouts_are_usable_and_mad_measures_their_noise() -> None:
    """On the synthetic renderer's cutouts the MAD (x 1.4826) recovers the per-band noise sigma that
    the renderer reports, and positives and negatives alike are usable."""
    render = pytest.importorskip("stronglens.cutouts.render")
    from tests.test_render import galaxies

    table = galaxies(12, flux_r=np.linspace(1, 4, 12), is_lens=np.arange(12) % 2 == 0)
    out = render.render_batch(table, seed=4)
    qa_table = qa.qa_features(out.cutouts).to_pandas()
    assert qa_table["is_usable"].all()
    sigma = out.metadata.to_pandas()[[f"noise_sigma_{b}" for b in "grz"]].to_numpy().ravel()
    # galaxy and arc light bias it up a little: most for positives, whose arcs are drawn visible
    # (S/N >= 25 outside the seeing disc, stronglens.cutouts.lenses)
    ratio = qa_table["mad"].to_numpy() * 1.4826 / sigma
    assert 0.97 < np.median(ratio) < 1.04 and ratio.min() > 0.95 and ratio.max() < 1.10
    assert np.all(np.abs(qa_table["background"].to_numpy()) < 0.1 * sigma)  # sky-subtracted model


def test_throughput_is_vectorised() -> None:
    rng = np.random.default_rng(19)
    cutouts = rng.normal(0, 0.01, (256, SIDE, SIDE, 3)).astype(np.float32)
    start = time.perf_counter()
    qa.qa_features(cutouts)
    rate = cutouts.shape[0] / (time.perf_counter() - start)
    print(f"qa_features: {rate:.0f} cutouts/s (101x101x3, 2 cores)")
    assert rate > 20  # ~500/s measured on an idle machine; a per-pixel Python loop gets < 1/s


def test_wide_features_pivot() -> None:
    rng = np.random.default_rng(20)
    cutouts = galaxies_with_noise(rng, 3)
    cutouts[1, 50, 50, 0] = np.nan
    long = qa.qa_features(cutouts, ids=["x", "y", "z"])
    wide = qa.wide_features(long)
    assert len(wide) == 3 and wide["sample_id"].tolist() == ["x", "y", "z"]
    frame = long.to_pandas()
    for name in qa.QAConfig().feature_columns:
        for band in "grz":
            expected = frame.loc[frame["band"] == band, name].to_numpy()
            np.testing.assert_array_equal(wide[f"{name}_{band}"].to_numpy(), expected)
    assert wide["is_usable"].tolist() == [True, False, True]


# --------------------------------------------------------------------------------------------------
# mosaic
# --------------------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_rgb_composite_channels_range_and_holes() -> None:
    ramp = np.zeros((1, 3, 3, 3))
    ramp[0, 0, 0] = [0.0, 0.0, 1.0]  # z only -> red
    ramp[0, 0, 1] = [1.0, 0.0, 0.0]  # g only -> blue
    ramp[0, 0, 2] = [0.0, 0.01, 0.0]  # faint r only -> green, below saturation
    ramp[0, 1, 0] = [np.nan, 0.0, 0.0]
    ramp[0, 1, 1] = [0.0, 0.1, 0.0]
    rgb = plots.rgb_composite(ramp)
    assert rgb.shape == (1, 3, 3, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.argmax(rgb[0, 0, 0]) == 0 and np.argmax(rgb[0, 0, 1]) == 2 and np.argmax(rgb[0, 0, 2]) == 1
    assert tuple(rgb[0, 1, 0]) == plots.HOLE_RGB
    assert rgb[0, 1, 1, 1] > rgb[0, 0, 2, 1]  # brighter r, brighter green
    with pytest.raises(ValueError, match="channels"):
        plots.rgb_composite(np.zeros((5, 5, 2)))


def test_mosaic_png_writes_a_readable_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    cutouts = galaxies_with_noise(rng, 11)
    cutouts[3, 40:60, 40:60, 1] = np.nan
    groups = ["positive"] * 5 + ["N1"] * 3 + ["ring_proxy"] * 3
    titles = [f"id {i}" for i in range(11)]
    path = plots.mosaic_png(
        cutouts, groups, tmp_path / "sub" / "mosaic.png", titles, per_group=4,
        group_order=["positive", "N1", "ring_proxy", "edge_on_proxy"], dpi=80,
    )  # fmt: skip
    width, height = png_size(path)
    label_inches = 0.4 + 0.095 * len("edge_on_proxy")
    assert abs(width - (label_inches + 4 * 1.5) * 80) <= 1
    assert abs(height - (0.5 + 4 * 1.75) * 80) <= 1
    assert 20_000 < path.stat().st_size < 3_000_000
    with pytest.raises(ValueError, match="one group per cutout"):
        plots.mosaic_png(cutouts, groups[:-1], tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles"):
        plots.mosaic_png(cutouts, groups, tmp_path / "x.png", titles[:3])


def test_centroid_offset_and_colours_see_one_sided_blue_light() -> None:
    """A symmetric red galaxy has its centroid at the centre and no annulus colour excess; adding a
    blue blob 8 px to one side moves the centroid and makes the annulus bluer than the core."""
    galaxy = blob(sigma=2.5, flux=50.0)[:, :, None] * np.array([0.4, 1.0, 1.8])
    arc = blob(sigma=1.5, flux=10.0, dx=8.0)[:, :, None] * np.array([1.0, 1.0, 0.8])
    images = np.stack([galaxy, galaxy + arc]).astype(np.float32)
    table = qa.qa_features(images).to_pandas().set_index(["sample_id", "band"])
    assert table.loc[(0, "r"), "centroid_offset"] < 0.01 < 1.0 < table.loc[(1, "r"), "centroid_offset"]
    assert table.loc[(0, "g"), "core_colour"] == pytest.approx(-2.5 * np.log10(0.4), abs=0.01)
    assert np.isnan(table.loc[(0, "r"), "core_colour"])
    assert abs(table.loc[(0, "g"), "annulus_colour_excess"]) < 0.01
    assert table.loc[(1, "g"), "annulus_colour_excess"] < -0.3  # the annulus is bluer in g - r
    assert table.loc[(0, "r"), "outer_noise"] == pytest.approx(0.0, abs=1e-6)

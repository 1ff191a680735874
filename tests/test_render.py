"""The fast synthetic renderer: against the exact reference, flux per band, determinism, features,
faint neighbours and lens truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from stronglens.cutouts import faint, lenses, morphology, render, render_reference
from tests.test_render_reference import galaxies as reference_galaxies
from tests.test_render_reference import neighbours

SMOOTH = render.RenderConfig(add_noise=False, morphology=False, faint_neighbours=False)
NOISELESS = render.RenderConfig(add_noise=False, faint_neighbours=False)


def galaxies(count: int = 1, **columns: object) -> pd.DataFrame:
    """The reference test table plus a sky position (Dec ~0, RA spread so cutouts do not overlap)."""
    base = {"ra": 150.0 + 0.01 * np.arange(count), "dec": 1.0}
    base.update({k: v for k, v in columns.items() if k in ("ra", "dec")})
    table = reference_galaxies(count, **{k: v for k, v in columns.items() if k not in ("ra", "dec")})
    for k, v in base.items():
        table[k] = np.broadcast_to(np.asarray(v), (count,))
    return table


def test_smooth_models_match_the_exact_reference_renderer() -> None:
    """Without features, faint objects or noise the fast renderer draws the reference's Tractor
    models: same total flux per band (0.5%) and pixels within 2% of the peak."""
    table = galaxies(
        6,
        type=["EXP", "DEV", "SER", "REX", "PSF", "DEV"],
        shape_r=[0.8, 0.5, 1.5, 0.4, 0.0, 2.5],
        sersic=[1.0, 4.0, 2.5, 1.0, 0.0, 4.0],
        flux_r=[5.0, 20.0, 8.0, 3.0, 4.0, 40.0],
    )
    nb = neighbours([table.galaxy_id[0]], [4.0], [-3.0], type="EXP", shape_r=0.6, flux_r=2.0)
    fast = render.render_batch(table, nb, seed=3, config=SMOOTH).cutouts.astype(np.float64)
    ref_cfg = render_reference.RenderConfig(add_noise=False)
    ref = render_reference.render_batch(table.drop(columns=["ra", "dec"]), nb, seed=3, config=ref_cfg).cutouts
    for k in range(len(table)):
        np.testing.assert_allclose(fast[k].sum(axis=(0, 1)), ref[k].sum(axis=(0, 1)), rtol=5e-3)
        assert np.max(np.abs(fast[k] - ref[k])) < 0.02 * ref[k].max()


def test_features_keep_each_galaxys_catalogue_flux_per_band() -> None:
    """Whatever features a galaxy draws, its light sums to its catalogue flux in every band."""
    n = 60
    rng = np.random.default_rng(0)
    table = galaxies(
        n,
        type=np.where(np.arange(n) % 3 == 0, "DEV", "EXP"),
        sersic=np.where(np.arange(n) % 3 == 0, 4.0, 1.0),
        shape_r=rng.uniform(0.8, 2.5, n),
        shape_e1=rng.uniform(-0.6, 0.6, n),
        shape_e2=rng.uniform(-0.3, 0.3, n),
        flux_g=rng.uniform(1, 20, n),
        flux_r=rng.uniform(5, 30, n),
        flux_z=rng.uniform(8, 40, n),
    )
    out = render.render_batch(table, seed=5, config=NOISELESS)
    features = out.metadata.to_pandas().filter(like="has_").to_numpy()
    assert features.any(axis=1).mean() > 0.5  # most of these big galaxies have something
    total = out.cutouts.astype(np.float64).sum(axis=(1, 2))
    catalogue = table[["flux_g", "flux_r", "flux_z"]].to_numpy()
    # the cutout holds all but the far wings of galaxies of r_e <= 2.5" (and tidal light at its edge)
    ratio = total / catalogue
    assert np.all(ratio < 1.001) and np.median(ratio) > 0.97 and ratio.min() > 0.9


def test_features_follow_the_catalogue_parameters() -> None:
    """Bright DEVs get rings, blue discs knots, edge-ons dust lanes, red compact ones nothing much."""
    n = 400
    ids = 10**15 + np.arange(n)

    def drawn(**cols: object) -> pd.DataFrame:
        return render.render_batch(
            galaxies(n, galaxy_id=ids, **cols),
            seed=1,
            config=NOISELESS.__class__(add_noise=False, chunk_size=400),
        ).metadata.to_pandas()

    ring = drawn(type="DEV", sersic=4.0, shape_r=1.5, flux_r=20.0)
    blue = drawn(type="EXP", shape_r=1.2, flux_g=8.0, flux_r=10.0, flux_z=11.0, shape_e1=0.05)
    edge = drawn(type="EXP", shape_r=1.5, shape_e1=0.7, shape_e2=0.0)
    plain = drawn(type="DEV", sersic=4.0, shape_r=0.3, flux_r=1.0, flux_g=0.3, flux_z=2.0)
    assert ring["has_ring"].mean() > 0.4
    assert blue["has_clumps"].mean() > 0.6 and blue["has_spiral"].mean() > 0.4
    assert edge["has_dust_lane"].mean() > 0.6 and edge["has_spiral"].mean() < 0.1
    assert plain.filter(like="has_").any(axis=1).mean() < 0.1


def test_cutouts_do_not_depend_on_batch_order_or_chunking() -> None:
    table = galaxies(10, is_lens=np.arange(10) % 3 == 0, shape_r=np.linspace(0.5, 2.0, 10))
    a = render.render_batch(table, seed=11).cutouts
    b = render.render_batch(
        table.iloc[::-1].reset_index(drop=True), seed=11, config=render.RenderConfig(chunk_size=3)
    )
    # identical up to float32 rounding in matrix products whose inner size depends on the batch
    np.testing.assert_allclose(a, b.cutouts[::-1], rtol=0, atol=1e-6 * np.abs(a).max())
    c = render.render_batch(table, seed=12).cutouts
    assert not np.array_equal(a, c)


def test_noise_has_the_reported_sigma() -> None:
    table = galaxies(8, flux_g=0.0, flux_r=0.0, flux_z=0.0, type="PSF", shape_r=0.0)
    config = render.RenderConfig(faint_neighbours=False, morphology=False)
    out = render.render_batch(table, seed=2, config=config)
    sigma = out.metadata.to_pandas()[["noise_sigma_g", "noise_sigma_r", "noise_sigma_z"]].to_numpy()
    measured = out.cutouts.std(axis=(1, 2))
    np.testing.assert_allclose(measured, sigma, rtol=0.03)
    ref_sigma = render_reference.render_batch(table.drop(columns=["ra", "dec"]), seed=2).metadata.to_pandas()
    np.testing.assert_allclose(
        sigma, ref_sigma[["noise_sigma_g", "noise_sigma_r", "noise_sigma_z"]], rtol=1e-9
    )


def test_faint_objects_belong_to_the_sky_not_to_the_cutout() -> None:
    """Two overlapping cutouts show the same faint objects at the same sky positions, and their
    number follows the configured counts."""
    sky = faint.FaintSky()
    ra = np.array([150.0, 150.0 + 5.0 / 3600.0])
    dec = np.array([1.0, 1.0])
    src = faint.faint_sources(ra, dec, 13.2, seed=4, sky=sky)
    a = src.owner == 0
    b = src.owner == 1
    # sky positions (RA from the tangent-plane offset; the cutouts are 5" apart, offsets <= 16")
    cos_dec = np.cos(np.radians(1.0))
    sky_a = np.c_[ra[0] - src.x[a] / 3600.0 / cos_dec, src.y[a] / 3600.0]
    sky_b = np.c_[ra[1] - src.x[b] / 3600.0 / cos_dec, src.y[b] / 3600.0]
    sep = np.abs(sky_a[:, None, :] - sky_b[None, :, :]).max(axis=2) * 3600.0  # arcsec
    shared = np.sum(sep.min(axis=1) < 0.01)
    assert shared >= 0.5 * min(len(sky_a), len(sky_b)) > 0
    many = faint.faint_sources(150.0 + np.arange(400) * 0.02, np.zeros(400), 13.2, seed=4, sky=sky)
    inside = (np.abs(many.x) < 13.2) & (np.abs(many.y) < 13.2)
    expected = sky.class_densities().sum() * (26.4 / 3600.0) ** 2
    assert np.sum(inside) / 400 == pytest.approx(expected, rel=0.1)
    assert (
        many.is_point.mean() < 0.6 and np.all(many.mag_z >= sky.mag_min) and np.all(many.mag_z <= sky.mag_max)
    )


def test_positives_carry_their_lens_truth() -> None:
    n = 24
    table = galaxies(n, is_lens=True, type="DEV", sersic=4.0, shape_r=1.0, flux_z=np.linspace(10, 60, n))
    out = render.render_batch(table, seed=8)
    meta = out.metadata.to_pandas()
    model = lenses.LensModel()
    theta = 4 * np.pi * (meta["sigma_v_km_s"] / 299_792.458) ** 2 * 206_264.8
    assert np.all(meta["theta_e_arcsec"] <= theta * model.distance_ratio_range[1] + 1e-9)
    assert np.all(meta["magnification"] > 1.5) and np.all(np.isfinite(meta["arc_snr"]))
    assert meta["arc_snr"].min() < meta["arc_snr"].max() / 3  # a spread, not one brightness
    assert meta[["arc_annulus_fraction"]].stack().between(0, 1).all()
    # brighter hosts are more massive: theta_E rises with host flux
    assert np.corrcoef(np.log(table["flux_z"]), meta["theta_e_arcsec"])[0, 1] > 0.3
    # the lensed light is what differs from the same galaxies unlensed
    unlensed = render.render_batch(table.assign(is_lens=False), seed=8).cutouts
    diff = (out.cutouts - unlensed).astype(np.float64).sum(axis=(1, 2))[:, 1]
    arc_flux = 10 ** (-0.4 * (meta["lensed_mag_r"] - 22.5))
    np.testing.assert_allclose(diff, arc_flux, rtol=0.1, atol=0.2)


def test_visible_snr_is_the_arc_snr_outside_the_seeing_disc() -> None:
    """With no core excluded the visible S/N (window ray-tracing, window PSF) equals the arc S/N the
    renderer measures on the whole cutout; excluding the core only lowers it, more for small lenses."""
    n = 12
    table = galaxies(n, is_lens=True, type="DEV", sersic=4.0, shape_r=1.0, flux_z=np.linspace(10, 60, n))
    whole = lenses.LensModel(min_visible_snr=0.0, visible_radius_fwhm=0.0)
    meta = render.render_batch(table, seed=8, config=render.RenderConfig(lens=whole)).metadata.to_pandas()
    np.testing.assert_allclose(meta["visible_arc_snr"], meta["arc_snr"], rtol=2e-3)
    assert (meta["lens_draw_attempt"] == 0).all()
    outside = lenses.LensModel(min_visible_snr=0.0, visible_radius_fwhm=1.0)
    cut = render.render_batch(table, seed=8, config=render.RenderConfig(lens=outside)).metadata.to_pandas()
    np.testing.assert_allclose(cut["theta_e_arcsec"], meta["theta_e_arcsec"])
    kept = cut["visible_arc_snr"] / meta["arc_snr"]
    assert kept.between(0, 1).all() and kept.min() < 0.9
    small = cut["theta_e_arcsec"] < cut["theta_e_arcsec"].median()
    assert kept[small].mean() < kept[~small].mean()


def test_positives_are_redrawn_until_their_arcs_are_visible() -> None:
    """The visual selection of the catalogue: every positive reaches the visible S/N threshold
    unless it ran out of draws (then it keeps its most visible draw), a positive's lens does not
    depend on its batch, and the selection shifts theta_E upwards (small lenses hide in the PSF)."""
    n = 40
    table = galaxies(n, is_lens=True, type="DEV", sersic=4.0, shape_r=1.0, flux_z=np.linspace(5, 40, n))
    free = lenses.LensModel(min_visible_snr=0.0)
    strict = lenses.LensModel(min_visible_snr=25.0, max_draws=6)
    before = render.render_batch(table, seed=3, config=render.RenderConfig(lens=free)).metadata.to_pandas()
    after = render.render_batch(table, seed=3, config=render.RenderConfig(lens=strict)).metadata.to_pandas()
    redrawn = after["lens_draw_attempt"] > 0
    assert redrawn.any() and (after["lens_draw_attempt"] < strict.max_draws).all()
    passed = after["visible_arc_snr"] >= strict.min_visible_snr
    assert passed.mean() > 0.8
    assert (after["visible_arc_snr"] >= before["visible_arc_snr"] - 1e-9).all()  # never less visible
    unchanged = before["visible_arc_snr"] >= strict.min_visible_snr
    np.testing.assert_allclose(
        after.loc[unchanged, "theta_e_arcsec"], before.loc[unchanged, "theta_e_arcsec"]
    )
    assert after["theta_e_arcsec"].median() > before["theta_e_arcsec"].median()
    # one positive alone gets the same lens as in the batch
    alone = render.render_batch(table.iloc[[7]], seed=3, config=render.RenderConfig(lens=strict)).metadata
    assert alone.column("theta_e_arcsec")[0].as_py() == pytest.approx(after["theta_e_arcsec"][7])
    assert alone.column("lens_draw_attempt")[0].as_py() == after["lens_draw_attempt"][7]
    with pytest.raises(ValueError, match="max_draws"):
        lenses.LensModel(max_draws=0)


def test_bad_rows_fail_alone_with_a_reason() -> None:
    table = galaxies(3)
    table.loc[1, "psfsize_r"] = 0.0
    table.loc[2, "dec"] = np.nan
    out = render.render_batch(table, seed=1)
    meta = out.metadata.to_pandas()
    assert meta["status"].tolist() == ["ok", "failed", "failed"]
    assert "psfsize" in meta.loc[1, "error"] and "ra, dec" in meta.loc[2, "error"]
    assert np.isnan(out.cutouts[1]).all() and np.isfinite(out.cutouts[0]).all()
    with pytest.raises(KeyError, match="'ra'"):
        render.render_batch(table.drop(columns="ra"), seed=1)


def test_sersic_templates_hold_the_analytic_flux() -> None:
    coords = morphology.grid_coordinates(101, 10, 0.262)
    images, core = morphology.sersic_templates(
        coords, np.zeros(2), np.zeros(2), np.array([0.3, 2.0]), np.array([4.0, 1.0]), np.array([0.5, 1.0]),
        np.zeros(2), 0.262,
    )  # fmt: skip
    # on the grid: the whole profile but its cusp (small DEV) or its far wings (r_e = 2" disc)
    assert images[0].sum() + core[0] == pytest.approx(1.0, abs=2e-3)
    assert 0.98 < images[1].sum() + core[1] < 1.0
    assert core[0] > 0.05 and core[1] < 0.01  # a small de Vaucouleurs keeps a real cusp


def test_arc_free_twins_are_the_positives_without_their_arcs() -> None:
    """arc_free_qa measures each positive rendered again with is_lens off (same host, sky and noise),
    and nothing for the negatives."""
    from stronglens.cutouts.qa import qa_features

    table = galaxies(6, type="DEV", sersic=4.0, shape_r=1.0, flux_z=40.0)
    table["is_lens"] = [True, False, True, False, True, False]
    table["sample_id"] = [f"s{i}" for i in range(6)]
    twins = render.arc_free_qa(pa.Table.from_pandas(table, preserve_index=False), None, seed=8, batch=2)
    assert twins.column("sample_id").to_pylist() == [s for s in ("s0", "s2", "s4") for _ in "grz"]
    positives = table[table["is_lens"]]
    unlensed = render.render_batch(positives.assign(is_lens=False), seed=8).cutouts
    expected = qa_features(unlensed, ids=positives["sample_id"].tolist())
    assert twins.equals(expected)
    lensed = qa_features(render.render_batch(positives, seed=8).cutouts, ids=positives["sample_id"].tolist())
    assert not twins.equals(lensed)


def test_renderer_fingerprint_names_what_shapes_the_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store key of synthetic cutouts includes this fingerprint: it must change with the render
    revision and with any pixel-shaping default (here the visual selection's threshold), and not
    with threading."""
    import dataclasses

    base = render.renderer_fingerprint()
    assert len(base) == 16 and base == render.renderer_fingerprint()
    monkeypatch.setattr(render, "RENDER_REVISION", render.RENDER_REVISION + 1)
    assert render.renderer_fingerprint() != base
    monkeypatch.undo()
    stricter = dataclasses.replace(lenses.LensModel(), min_visible_snr=30.0)
    original = render.RenderConfig
    monkeypatch.setattr(render, "RenderConfig", lambda: original(lens=stricter))
    assert render.renderer_fingerprint() != base
    monkeypatch.setattr(render, "RenderConfig", lambda: original(workers=7, chunk_size=5))
    assert render.renderer_fingerprint() == base

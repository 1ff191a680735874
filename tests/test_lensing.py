"""Tests of :mod:`stronglens.lensing` against independent references: ``lenstronomy`` (SIE, SIS,
NIE, elliptical Sersic), astropy's TAN WCS, numerical integration, and analytic lensing results.

Conventions checked here (and documented in the module):
* lenstronomy's ``SIE(theta_E, e1, e2)`` equals ours with ``(q, phi)`` from lenstronomy's own
  ``phi_q2_ellipticity`` and **no** Einstein-radius conversion (both: kappa = theta_E / (2
  sqrt(q x'^2 + y'^2/q))).  lenstronomy's SIE is its NIE with a 1e-10 core, so it is compared
  with tolerance ``1e-10 + 5 s/psi``; the NIE with core 0 matches to 1e-12 (measured 2e-14).
* lenstronomy's ``SERSIC_ELLIPSE`` ``R_sersic`` is the product-averaged radius ``r_e sqrt(q)``
  (``r_e`` itself with ``sersic_major_axis=True``) and its ``amp`` is ``I_e``; its ``b_n`` is
  the approximation ``1.9992 n - 0.3271``, so the comparison swaps in the exact ``b_n``.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS
from lenstronomy.LensModel.Profiles.nie import NIE
from lenstronomy.LensModel.Profiles.sersic_utils import SersicUtil
from lenstronomy.LensModel.Profiles.sie import SIE
from lenstronomy.LensModel.Profiles.sis import SIS
from lenstronomy.LightModel.Profiles.sersic import SersicElliptic
from lenstronomy.Util import param_util
from scipy import integrate, special

from stronglens import lensing

RNG_SEED = 20240611


def _random_lens_points(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Random lenses and image-plane points: radii log-uniform over 1e-6..1e4 arcsec, q down to
    0.05, all angles, off-centre lenses."""
    radius = 10.0 ** rng.uniform(-6, 4, size)
    angle = rng.uniform(-np.pi, np.pi, size)
    x0 = rng.uniform(-2, 2, size)
    y0 = rng.uniform(-2, 2, size)
    return {
        "theta_e": rng.uniform(0.1, 5.0, size),
        "q": rng.uniform(0.05, 1.0, size),
        "phi": rng.uniform(-np.pi, np.pi, size),
        "x0": x0,
        "y0": y0,
        "x": x0 + radius * np.cos(angle),
        "y": y0 + radius * np.sin(angle),
    }


def _adversarial_lens_points() -> dict[str, np.ndarray]:
    """Points on the major and minor axes (both signs), near and far from the centre, for q -> 1,
    q ~ 0.2 and in-between, at position angles including the degenerate 0, pi/2, pi."""
    rows = []
    for q in (1 - 1e-15, 1 - 1e-12, 1 - 1e-9, 1 - 1e-6, 1 - 1e-3, 0.9, 0.5, 0.2, 0.05):
        for phi in (0.0, np.pi / 2, np.pi, -np.pi / 4, 0.3, 2.9):
            for r in (1e-9, 1e-4, 0.5, 1.0, 3.0, 1e5):
                for along in (0.0, np.pi / 2, np.pi, 3 * np.pi / 2, 1e-9, np.pi / 2 + 1e-9):
                    a = phi + along
                    rows.append((1.3, q, phi, 0.2, -0.1, 0.2 + r * np.cos(a), -0.1 + r * np.sin(a)))
    arr = np.array(rows)
    return dict(zip(("theta_e", "q", "phi", "x0", "y0", "x", "y"), arr.T, strict=True))


def _relative_vector_error(ax, ay, bx, by) -> np.ndarray:
    return np.hypot(ax - bx, ay - by) / np.hypot(bx, by)


@pytest.mark.parametrize("points", ["random", "adversarial"])
def test_sie_deflection_matches_lenstronomy(points: str) -> None:
    p = (
        _random_lens_points(np.random.default_rng(RNG_SEED), 4000)
        if points == "random"
        else (_adversarial_lens_points())
    )
    ours = lensing.sie_deflection(p["x"], p["y"], p["theta_e"], p["q"], p["phi"], p["x0"], p["y0"])
    e1, e2 = param_util.phi_q2_ellipticity(p["phi"], p["q"])
    # lenstronomy reads (q, phi) back from (e1, e2); use what it reads, so rounding in that round
    # trip (|e| ~ 1e-16 for q -> 1) is not mistaken for a difference in the deflection
    phi_l, q_l = param_util.ellipticity2phi_q(e1, e2)
    ours_l = lensing.sie_deflection(p["x"], p["y"], p["theta_e"], q_l, phi_l, p["x0"], p["y0"])
    np.testing.assert_allclose(_relative_vector_error(*ours, *ours_l), 0.0, atol=1e-8)

    nie = NIE()
    ref_x = np.empty_like(p["x"])
    ref_y = np.empty_like(p["x"])
    sie = SIE()
    sie_x = np.empty_like(p["x"])
    sie_y = np.empty_like(p["x"])
    for i in range(p["x"].size):  # lenstronomy takes scalar lens parameters
        args = (p["theta_e"][i], e1[i], e2[i])
        ref_x[i], ref_y[i] = nie.derivatives(p["x"][i], p["y"][i], *args, 0.0, p["x0"][i], p["y0"][i])
        sie_x[i], sie_y[i] = sie.derivatives(p["x"][i], p["y"][i], *args, p["x0"][i], p["y0"][i])
    # lenstronomy clamps q >= 1 to 1 - 1e-8; there it is the SIS, compared separately
    usable = q_l < 1.0 - 1e-8
    assert usable.sum() > 0.8 * usable.size if points == "random" else usable.sum() > 300
    err = _relative_vector_error(*ours_l, ref_x, ref_y)
    assert np.nanmax(err[usable]) < 1e-12, f"max relative error vs NIE(s=0): {np.nanmax(err[usable]):.2e}"

    # SIE = NIE with core s = 1e-10 / sqrt(q): agreement down to the core's relative size
    dx, dy = p["x"] - p["x0"], p["y"] - p["y0"]
    c, s = np.cos(phi_l), np.sin(phi_l)
    psi = np.hypot(q_l * (c * dx + s * dy), -s * dx + c * dy)
    # (arctanh amplifies the core's effect by up to 1/q^2 near the minor axis)
    tolerance = 1e-10 + 5 / q_l**2 * (1e-10 / np.sqrt(q_l)) / psi
    err_sie = _relative_vector_error(*ours_l, sie_x, sie_y)
    assert np.all(err_sie[usable] < tolerance[usable])


def test_sis_limit_matches_lenstronomy_sis_and_is_continuous() -> None:
    p = _random_lens_points(np.random.default_rng(RNG_SEED + 1), 3000)
    ours = lensing.sie_deflection(p["x"], p["y"], p["theta_e"], 1.0, p["phi"], p["x0"], p["y0"])
    ref = SIS().derivatives(p["x"], p["y"], p["theta_e"], p["x0"], p["y0"])
    assert np.max(_relative_vector_error(*ours, *ref)) < 1e-13
    # q -> 1 approaches the SIS smoothly (no 0/0, no cancellation): the difference is O(1 - q)
    for eps in (1e-15, 1e-12, 1e-8, 1e-5):
        near = lensing.sie_deflection(p["x"], p["y"], p["theta_e"], 1.0 - eps, p["phi"], p["x0"], p["y0"])
        assert np.max(_relative_vector_error(*near, *ours)) < 2 * eps + 1e-14


def test_sie_centre_scale_invariance_and_underflow() -> None:
    theta_e, q, phi = 1.7, 0.35, 0.8
    ax, ay = lensing.sie_deflection(3.0, -1.0, theta_e, q, phi, 3.0, -1.0)
    assert float(ax) == 0.0 and float(ay) == 0.0  # at the centre: defined as 0
    # isothermal: alpha depends on direction only, down to radii where x^2 underflows
    angle = np.linspace(0, 2 * np.pi, 97)
    unit = lensing.sie_deflection(np.cos(angle), np.sin(angle), theta_e, q, phi)
    for scale in (1e-300, 1e-160, 1e-20, 1e20, 1e150):
        scaled = lensing.sie_deflection(scale * np.cos(angle), scale * np.sin(angle), theta_e, q, phi)
        assert np.max(_relative_vector_error(*scaled, *unit)) < 1e-14


def test_sie_convergence_defines_theta_e() -> None:
    """kappa = div(alpha) / 2 = theta_e / (2 sqrt(q x'^2 + y'^2 / q)): the area of the kappa = 1/2
    ellipse is pi theta_e^2 -- the definition, checked by finite differences of alpha."""
    rng = np.random.default_rng(RNG_SEED + 2)
    n = 500
    theta_e, q, phi = rng.uniform(0.5, 3, n), rng.uniform(0.15, 1.0, n), rng.uniform(0, np.pi, n)
    r, a = rng.uniform(0.3, 5, n), rng.uniform(0, 2 * np.pi, n)
    x, y = r * np.cos(a), r * np.sin(a)
    h = 1e-5
    axp, _ = lensing.sie_deflection(x + h, y, theta_e, q, phi)
    axm, _ = lensing.sie_deflection(x - h, y, theta_e, q, phi)
    _, ayp = lensing.sie_deflection(x, y + h, theta_e, q, phi)
    _, aym = lensing.sie_deflection(x, y - h, theta_e, q, phi)
    kappa = 0.5 * ((axp - axm) + (ayp - aym)) / (2 * h)
    xp = np.cos(phi) * x + np.sin(phi) * y
    yp = -np.sin(phi) * x + np.cos(phi) * y
    np.testing.assert_allclose(kappa, theta_e / (2 * np.sqrt(q * xp**2 + yp**2 / q)), rtol=1e-6)


def test_sie_images_of_the_source_at_the_centre() -> None:
    """A source at the lens centre is imaged where alpha = theta: for the SIS a ring of radius
    theta_e; for the SIE on the axes, at theta_e sqrt(q) arctan(f/q)/f (major) and
    theta_e sqrt(q) arctanh(f)/f (minor)."""
    angle = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    bx, by = lensing.ray_shoot(1.4 * np.cos(angle), 1.4 * np.sin(angle), 1.4)
    assert np.max(np.hypot(bx, by)) < 1e-15
    theta_e, q, phi = 1.4, 0.6, 0.7
    f = np.sqrt(1 - q**2)
    r_major = theta_e * np.sqrt(q) * np.arctan(f / q) / f
    r_minor = theta_e * np.sqrt(q) * np.arctanh(f) / f
    for r, a in (
        (r_major, phi),
        (r_major, phi + np.pi),
        (r_minor, phi + np.pi / 2),
        (r_minor, phi - np.pi / 2),
    ):
        bx, by = lensing.ray_shoot(r * np.cos(a), r * np.sin(a), theta_e, q, phi)
        assert np.hypot(bx, by) < 1e-14
    assert lensing.sie_max_deflection(theta_e, q) == pytest.approx(r_minor, rel=1e-14)
    q_grid = np.linspace(1e-3, 1, 5000)
    assert lensing.sie_max_deflection(1.0, q_grid).max() <= lensing.SIE_MAX_DEFLECTION_PER_THETA_E


def test_ellipticity_conventions_match_lenstronomy() -> None:
    rng = np.random.default_rng(RNG_SEED + 3)
    q, phi = rng.uniform(0.05, 1, 1000), rng.uniform(-np.pi / 2, np.pi / 2, 1000)
    e1, e2 = param_util.phi_q2_ellipticity(phi, q)
    q_back, phi_back = lensing.axis_ratio_and_angle(e1, e2)
    np.testing.assert_allclose(q_back, q, rtol=1e-12)
    np.testing.assert_allclose(np.cos(2 * phi_back), np.cos(2 * phi), atol=1e-12)
    np.testing.assert_allclose(np.sin(2 * phi_back), np.sin(2 * phi), atol=1e-12)
    with pytest.raises(ValueError, match="< 1"):
        lensing.axis_ratio_and_angle(0.8, 0.6)
    # sky position angle (East of North) to frame angle (x = West, y = North)
    assert lensing.sky_pa_to_frame_angle(0.0) == pytest.approx(np.pi / 2)  # North is +y
    assert np.cos(lensing.sky_pa_to_frame_angle(np.pi / 2)) == pytest.approx(-1.0)  # East is -x


def test_tangent_plane_offsets_match_astropy_tan_wcs() -> None:
    rng = np.random.default_rng(RNG_SEED + 4)
    for ra0, dec0 in ((10.0, -5.0), (359.99, 0.01), (180.0, -89.0), (45.0, 80.0), (0.001, 30.0)):
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [ra0, dec0]
        wcs.wcs.crpix = [1.0, 1.0]  # FITS pixel 1 = 0-based pixel 0
        wcs.wcs.cd = np.array([[-1.0, 0.0], [0.0, 1.0]]) / 3600.0  # 1"/pixel, East to the left
        dra = rng.uniform(-30, 30, 200) / 3600 / np.cos(np.radians(dec0))
        ddec = rng.uniform(-30, 30, 200) / 3600
        ra, dec = (ra0 + dra) % 360, dec0 + ddec
        px, py = wcs.wcs_world2pix(ra, dec, 0)
        xi, eta = lensing.tangent_plane_offsets(ra0, dec0, ra, dec)
        np.testing.assert_allclose(xi, -px, atol=1e-7)
        np.testing.assert_allclose(eta, py, atol=1e-7)


# ------------------------------------------------------------------------------------------------
# Sersic
# ------------------------------------------------------------------------------------------------


def test_sersic_b_is_the_half_light_root() -> None:
    n = np.array([0.3, 0.5, 1.0, 2.0, 4.0, 6.0, 10.0])
    b = lensing.sersic_b(n)
    np.testing.assert_allclose(special.gammainc(2 * n, b), 0.5, rtol=1e-13)
    assert lensing.sersic_b(1.0) == pytest.approx(1.678346990016661, rel=1e-12)  # Ciotti & Bertin 1999
    assert lensing.sersic_b(4.0) == pytest.approx(7.669249442500804, rel=1e-12)


@pytest.fixture
def exact_bn_lenstronomy(monkeypatch: pytest.MonkeyPatch) -> None:
    """lenstronomy with the exact b_n, so its profile can be compared to ours to rounding."""
    monkeypatch.setattr(SersicUtil, "b_n", staticmethod(lambda n: special.gammaincinv(2 * n, 0.5)))


@pytest.mark.usefixtures("exact_bn_lenstronomy")
@pytest.mark.parametrize("major_axis", [False, True])
def test_sersic_profile_matches_lenstronomy(major_axis: bool) -> None:
    rng = np.random.default_rng(RNG_SEED + 5)
    profile = SersicElliptic(sersic_major_axis=major_axis)
    for _ in range(60):
        flux, r_e, n = rng.uniform(0.1, 100), rng.uniform(0.05, 5), rng.uniform(0.3, 8)
        q, phi = rng.choice([1.0, rng.uniform(0.1, 1.0)]), rng.uniform(-np.pi, np.pi)
        x0, y0 = rng.uniform(-1, 1, 2)
        radius = 10.0 ** rng.uniform(-2, 1.5, 300) * r_e  # lenstronomy floors radii at 1e-4
        angle = np.r_[rng.uniform(-np.pi, np.pi, 296), phi, phi + np.pi / 2, phi + np.pi, phi - np.pi / 2]
        x, y = x0 + radius * np.cos(angle), y0 + radius * np.sin(angle)
        ours = lensing.sersic_surface_brightness(x, y, flux, r_e, n, q, phi, x0, y0)
        e1, e2 = param_util.phi_q2_ellipticity(phi, q)
        i_e = flux / lensing.sersic_total_flux(1.0, r_e, n, q)
        r_sersic = r_e if major_axis else r_e * np.sqrt(q)
        ref = profile.function(x, y, i_e, r_sersic, n, e1, e2, x0, y0)
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=0)
        assert lensing.sersic_total_flux(i_e, r_e, n, q) == pytest.approx(
            profile.total_flux(i_e, r_sersic, n, e1, e2), rel=1e-12
        )


def test_sersic_total_flux_by_numerical_integration() -> None:
    """Integrate the 2D profile in polar coordinates about its centre, without using its symmetry:
    trapezoids in log(r) (the cusp and the tail are smooth there) and in angle (periodic), both
    exponentially convergent."""
    u = np.linspace(-30.0, 8.0, 2001)
    angle = np.linspace(0.0, 2 * np.pi, 481)[:-1]
    for n, q, r_e in ((0.5, 1.0, 1.0), (1.0, 0.3, 0.7), (2.5, 0.8, 2.0), (4.0, 0.5, 1.2), (6.0, 0.9, 0.4)):
        r = r_e * np.exp(u)[None, :]
        x, y = r * np.cos(angle)[:, None], r * np.sin(angle)[:, None]
        light = lensing.sersic_surface_brightness(x, y, 3.0, r_e, n, q, 0.4)
        radial = integrate.trapezoid(light * r * r, u, axis=1)  # dA = r dr dt = r^2 du dt
        total = radial.mean() * 2 * np.pi
        assert total == pytest.approx(3.0, rel=1e-7), (n, q, r_e)
        assert lensing.sersic_enclosed_fraction(r_e, r_e, n) == pytest.approx(0.5, rel=1e-12)


def test_mag_to_nanomaggies() -> None:
    assert lensing.mag_to_nanomaggies(22.5) == pytest.approx(1.0)
    assert lensing.mag_to_nanomaggies(np.array([20.0, 25.0])) == pytest.approx([10.0, 0.1])


# ------------------------------------------------------------------------------------------------
# PSF and rendering
# ------------------------------------------------------------------------------------------------


def _moments(image: np.ndarray, pixel_scale: float) -> tuple[float, float, float, float]:
    """Centroid (x, y) and second moments (var_x, var_y) in arcsec of a 2D image."""
    rows, cols = np.indices(image.shape)
    total = image.sum()
    cx, cy = (image * cols).sum() / total, (image * rows).sum() / total
    vx = (image * (cols - cx) ** 2).sum() / total
    vy = (image * (rows - cy) ** 2).sum() / total
    return cx * pixel_scale, cy * pixel_scale, vx * pixel_scale**2, vy * pixel_scale**2


@pytest.mark.parametrize("fwhm", [0.7, 1.0, 1.3, 1.9, 2.6])
def test_point_source_has_the_requested_pixelised_fwhm_and_flux(fwhm: float) -> None:
    grid = lensing.PixelGrid()
    sigma = lensing.gaussian_psf_sigma(np.array([[fwhm]]), grid.pixel_scale)
    rng = np.random.default_rng(int(fwhm * 100))
    x0, y0 = rng.uniform(-0.3, 0.3, 2)
    image = lensing.render_points([x0], [y0], [0], [[2.5]], sigma, grid)[0, :, :, 0]
    assert image.sum() == pytest.approx(2.5, rel=1e-12)
    cx, cy, vx, vy = _moments(image, grid.pixel_scale)
    centre = grid.centre * grid.pixel_scale
    assert cx - centre == pytest.approx(x0, abs=1e-9) and cy - centre == pytest.approx(y0, abs=1e-9)
    assert lensing.FWHM_PER_SIGMA * np.sqrt(vx) == pytest.approx(fwhm, rel=1e-6)
    assert lensing.FWHM_PER_SIGMA * np.sqrt(vy) == pytest.approx(fwhm, rel=1e-6)
    # noise-equivalent area of a Gaussian: 4 pi sigma_eff^2 (in pixels)
    nea = 1.0 / lensing.psf_norm_squared(sigma, grid)[0, 0]
    assert nea == pytest.approx(4 * np.pi * (fwhm / lensing.FWHM_PER_SIGMA / grid.pixel_scale) ** 2, rel=0.02)
    with pytest.raises(ValueError, match="FWHM"):
        lensing.gaussian_psf_sigma(0.1)


def _flux_inside_square(half: float, r_e: float, n: float, q: float, phi: float) -> float:
    """Exact fraction of a centred elliptical Sersic's flux inside the square |x|, |y| <= half:
    in circularised coordinates (x', y'/q) the profile is round, so the fraction is the mean over
    directions of P(2n, b (rho/r_e)^(1/n)) with rho the circularised exit radius of the square."""
    psi = np.linspace(0, 2 * np.pi, 400_001)[:-1]
    u, v = np.cos(psi), q * np.sin(psi)
    vx = np.cos(phi) * u - np.sin(phi) * v
    vy = np.sin(phi) * u + np.cos(phi) * v
    rho = half / np.maximum(np.abs(vx), np.abs(vy))
    return float(np.mean(lensing.sersic_enclosed_fraction(rho, r_e, n)))


@pytest.mark.parametrize(
    ("n", "r_e", "q"),
    [
        (0.5, 0.2, 1.0),
        (1.0, 0.05, 0.5),
        (1.0, 1.0, 0.3),
        (1.0, 4.0, 1.0),
        (2.5, 0.6, 0.7),
        (4.0, 0.1, 1.0),
        (4.0, 0.4, 0.4),
        (4.0, 1.5, 0.8),
        (4.0, 4.0, 0.6),
        (6.0, 0.3, 0.9),
        (6.0, 2.0, 1.0),
    ],
)
def test_rendered_sersic_flux_equals_exact_flux_in_the_cutout(n: float, r_e: float, q: float) -> None:
    """Sub-pixel cusps included (the analytic core), the cutout holds the profile's exact flux
    inside its square, to 0.5% (PSF spill across the edges is second order)."""
    grid = lensing.PixelGrid()
    sigma = lensing.gaussian_psf_sigma(np.array([[1.3]]), grid.pixel_scale)
    phi = 0.7
    image = lensing.render_sersic(
        lensing.SersicSources.of(r_e, n, q, phi, 0.0, 0.0), [0], [[1.0]], sigma, grid, 16
    )
    expected = _flux_inside_square(grid.n_pix * grid.pixel_scale / 2, r_e, n, q, phi)
    assert image.sum() == pytest.approx(expected, rel=5e-3)


def test_rendering_converges_with_supersampling_and_matches_a_point_source() -> None:
    sigma = lensing.gaussian_psf_sigma(np.array([[1.2]]))
    src = lensing.SersicSources.of(0.6, 4.0, 0.5, 0.3, 0.1, -0.2)
    coarse = lensing.render_sersic(src, [0], [[1.0]], sigma, lensing.PixelGrid(supersample=4), 16)
    fine = lensing.render_sersic(src, [0], [[1.0]], sigma, lensing.PixelGrid(supersample=16), 16)
    assert np.max(np.abs(coarse - fine)) < 6e-3 * fine.max()  # measured 0.46% at the core
    assert coarse.sum() == pytest.approx(fine.sum(), rel=3e-3)
    # a source far below a sub-pixel is a point source
    tiny = lensing.render_sersic(
        lensing.SersicSources.of(1e-3, 1.0, 0.8, 0.3, 0.1, -0.2), [0], [[1.0]], sigma, lensing.PixelGrid(), 16
    )
    point = lensing.render_points([0.1], [-0.2], [0], [[1.0]], sigma, lensing.PixelGrid())
    assert np.max(np.abs(tiny - point)) < 1e-4 * point.max()


def test_orientation_and_sources_beyond_the_edge() -> None:
    """+x is the column index, +y the row index; a galaxy outside the cutout (window clipped) spills
    the same light as when it is rendered inside a bigger cutout."""
    sigma = lensing.gaussian_psf_sigma(np.array([[1.5], [1.5]]))
    grid = lensing.PixelGrid()
    src = lensing.SersicSources.of(1.0, 1.0, 0.4, 0.0, [3.0, 0.0], [0.0, 3.0])
    images = lensing.render_sersic(src, [0, 1], np.ones((2, 1)), sigma, grid, 16)
    for k, (dx, dy) in enumerate(((3.0, 0.0), (0.0, 3.0))):
        cx, cy, vx, vy = _moments(images[k, :, :, 0], grid.pixel_scale)
        centre = grid.centre * grid.pixel_scale
        assert (cx - centre, cy - centre) == pytest.approx((dx, dy), abs=1e-3)
        assert vx > vy  # major axis at phi = 0 is along x
    big = lensing.PixelGrid(n_pix=201)
    offset = 16.0  # arcsec: the centre lies 2.8" beyond the edge of the small cutout
    src = lensing.SersicSources.of(2.0, 2.5, 0.6, 0.4, offset, -3.0)
    small_image = lensing.render_sersic(src, [0], [[1.0]], sigma[:1], grid, 16)[0, :, :, 0]
    big_image = lensing.render_sersic(src, [0], [[1.0]], sigma[:1], big, 16)[0, 50:151, 50:151, 0]
    assert small_image.sum() > 0.01
    np.testing.assert_allclose(small_image, big_image, atol=2e-3 * big_image.max())


# ------------------------------------------------------------------------------------------------
# lensed sources
# ------------------------------------------------------------------------------------------------


def test_einstein_ring_of_a_centred_source_lies_at_theta_e() -> None:
    theta_e = 1.5
    grid = lensing.PixelGrid(n_pix=201, pixel_scale=0.02, supersample=4, pad_pix=4)
    sigma = lensing.gaussian_psf_sigma(np.array([[0.03]]), grid.pixel_scale)
    image, mu = lensing.render_lensed_sersic(
        lensing.SIELenses.of(theta_e, 1.0, 0.0, 0.0, 0.0),
        lensing.SersicSources.of(0.05, 1.0, 1.0, 0.0, 0.0, 0.0),
        [[1.0]],
        sigma,
        grid,
        grid.n_padded,
    )
    img = image[0, :, :, 0]
    c = grid.pixel_centres()
    radius = np.hypot(c[None, :], c[:, None])
    ring = radius < 1.95  # the image lies within the cutout
    mean_radius = (img * radius)[ring].sum() / img[ring].sum()
    assert mean_radius == pytest.approx(theta_e, rel=5e-3)
    profile = np.bincount(np.rint(radius / grid.pixel_scale).astype(int).ravel(), weights=img.ravel())
    counts = np.bincount(np.rint(radius / grid.pixel_scale).astype(int).ravel())
    peak = np.argmax(profile[:97] / counts[:97]) * grid.pixel_scale
    assert peak == pytest.approx(theta_e, abs=grid.pixel_scale)
    # a centred source is magnified by 2 theta_e <1/|beta|> (> 2 theta_e / r_e-ish)
    assert mu[0] > 2 * theta_e / 0.05


def _sis_finite_source_magnification(
    theta_e: float, r_e: float, n: float, q: float, phi: float, bx: float, by: float
) -> float:
    """Reference: integrate source light x point magnification over the source plane, with
    mu(beta) = 2 theta_e / |beta| inside the SIS caustic and 1 + theta_e / |beta| outside."""
    h = r_e / 60
    t = np.arange(-8 * r_e + h / 2, 8 * r_e, h)  # cell centres, so beta = 0 is never sampled
    x, y = bx + t[None, :], by + t[:, None]
    light = lensing.sersic_surface_brightness(x, y, 1.0, r_e, n, q, phi, bx, by)
    b = np.hypot(x, y)
    mu = np.where(b < theta_e, 2 * theta_e / b, 1 + theta_e / b)
    return float((light * mu).sum() * h * h)


@pytest.mark.parametrize(("theta_e", "beta"), [(1.5, 0.75), (1.0, 0.3), (2.5, 1.2)])
def test_magnification_of_a_point_like_source_is_the_analytic_sis_value(theta_e: float, beta: float) -> None:
    """Image-plane flux of a tiny source at (beta, 0) over its unlensed flux: theta_e / beta + 1 for
    the image at theta_e + beta, theta_e / beta - 1 for the one at -(theta_e - beta).  Integrated
    in polar coordinates over each image (radial extent ~r_e, angular extent ~r_e / beta)."""
    r_e = 0.004
    radial = np.linspace(-20 * r_e, 20 * r_e, 801)
    spread = np.linspace(-20 * r_e / beta, 20 * r_e / beta, 801)
    dr, dt = radial[1] - radial[0], spread[1] - spread[0]
    ratios = []
    for radius, direction in ((theta_e + beta, 0.0), (theta_e - beta, np.pi)):
        r = radius + radial[:, None]
        t = direction + spread[None, :]
        bx, by = lensing.ray_shoot(r * np.cos(t), r * np.sin(t), theta_e)
        light = lensing.sersic_surface_brightness(bx, by, 1.0, r_e, 0.5, 1.0, 0.0, beta, 0.0)
        ratios.append(float((light * r).sum() * dr * dt))
    assert ratios[0] == pytest.approx(theta_e / beta + 1, rel=1e-3)
    assert ratios[1] == pytest.approx(theta_e / beta - 1, rel=1e-3)
    assert sum(ratios) == pytest.approx(2 * theta_e / beta, rel=1e-3)


@pytest.mark.parametrize(("supersample", "pixel_scale", "rel"), [(4, 0.262, 1e-3), (8, 0.1, 1e-4)])
def test_rendered_magnification_matches_the_finite_source_reference(
    supersample: int, pixel_scale: float, rel: float
) -> None:
    theta_e, r_e, n, q, phi = 1.4, 0.15, 1.0, 0.6, 0.5
    bx, by = 0.45, -0.3
    grid = lensing.PixelGrid(
        n_pix=int(np.ceil(10.0 / pixel_scale)) | 1, pixel_scale=pixel_scale, supersample=supersample
    )
    sigma = lensing.gaussian_psf_sigma(np.array([[1.1, 1.3]]), grid.pixel_scale)
    image, mu = lensing.render_lensed_sersic(
        lensing.SIELenses.of(theta_e, 1.0, 0.0, 0.0, 0.0),
        lensing.SersicSources.of(r_e, n, q, phi, bx, by),
        [[2.0, 1.0]],
        sigma,
        grid,
        lensing.lensed_window_pix(theta_e, np.hypot(bx, by), r_e, grid),
    )
    reference = _sis_finite_source_magnification(theta_e, r_e, n, q, phi, bx, by)
    assert mu[0] == pytest.approx(reference, rel=rel)
    # the image carries the lensed flux in each band (the PSF spreads ~nothing off this cutout)
    assert image[0].sum(axis=(0, 1)) == pytest.approx(mu[0] * np.array([2.0, 1.0]), rel=1e-6)


def test_lensed_sie_images_follow_the_lens_orientation() -> None:
    """An elongated lens with a centred source: the images along the lens's minor axis lie further
    out (r_minor > r_major), so the ring's light is elongated along the minor axis."""
    grid = lensing.PixelGrid(n_pix=151, pixel_scale=0.05)
    sigma = lensing.gaussian_psf_sigma(np.array([[0.3]]), grid.pixel_scale)
    phi = 0.0  # lens major axis along x
    image, _ = lensing.render_lensed_sersic(
        lensing.SIELenses.of(1.5, 0.5, phi, 0.0, 0.0),
        lensing.SersicSources.of(0.1, 1.0, 1.0, 0.0, 0.0, 0.0),
        [[1.0]],
        sigma,
        grid,
        grid.n_padded,
    )
    _, _, vx, vy = _moments(image[0, :, :, 0], grid.pixel_scale)
    assert vy > 1.1 * vx


def test_renderer_input_validation() -> None:
    grid = lensing.PixelGrid()
    sigma = lensing.gaussian_psf_sigma(np.array([[1.0]]))
    with pytest.raises(ValueError, match="band_fluxes"):
        lensing.render_sersic(
            lensing.SersicSources.of(1.0, 1.0, 1.0, 0.0, 0.0, 0.0), [0], [[1.0, 2.0]], sigma, grid, 16
        )
    with pytest.raises(ValueError, match="owner"):
        lensing.render_sersic(
            lensing.SersicSources.of(1.0, 1.0, 1.0, 0.0, 0.0, 0.0), [1], [[1.0]], sigma, grid, 16
        )
    with pytest.raises(ValueError, match="non-finite"):
        lensing.SersicSources.of(np.nan, 1.0, 1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="q must lie"):
        lensing.sie_deflection(1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="one source per lens"):
        lensing.render_lensed_sersic(
            lensing.SIELenses.of([1.0, 1.0], 1.0, 0.0, 0.0, 0.0),
            lensing.SersicSources.of(1.0, 1.0, 1.0, 0.0, 0.0, 0.0),
            [[1.0]],
            sigma,
            grid,
            16,
        )
    with pytest.raises(ValueError, match="PixelGrid"):
        lensing.PixelGrid(supersample=0)

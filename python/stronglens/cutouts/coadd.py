"""Cutouts cut from DR10 brick coadd images: the ``coadd`` cutout source (the bulk path).

Why: the viewer serves ~1 cutout/s per connection; the brick coadds hold the same pixels and are
read at disk/S3 speed, ~200x faster for bulk work (DOMAIN.md).  Files and layout as DR10:
``<root>/coadd/<AAA>/<brick>/legacysurvey-<brick>-image-<band>.fits.fz`` (``AAA`` = first three
characters of the brick name; the template is a parameter), tile-compressed FITS, 3600 x 3600 px
at 0.262"/px, each brick with its *own* TAN projection centred on the brick centre.  ``root`` may
be a folder or an ``s3://`` prefix (S3 files are read whole into memory once, then cached).

Geometry.  The cutout is defined exactly like the viewer's: ``size x size`` pixels of ``pixscale``
on a TAN projection centred on ``(ra, dec)``, north up, east left (CD1_1 = -pixscale, CD2_2 =
+pixscale), centre pixel at CRPIX = (size + 1) / 2; row 0 is the southern edge, as in FITS.  For
every cutout pixel centre we compute its sky position, the brick that *owns* that position on the
Legacy Surveys grid (:mod:`stronglens.bricks`: neighbouring coadds overlap by ~40", the owner rule
makes the choice unique and seamless), and that brick's pixel coordinates via its own WCS; then

* ``method='nearest'`` (default): the value of the nearest brick pixel (``floor(x + 0.5)``).  Pixels
  keep their exact values and noise properties; the price is a position error of at most half a
  pixel (0.13") where the cutout grid and the brick grid are not aligned;
* ``method='bilinear'``: bilinear interpolation of the four surrounding pixels (smoother geometry,
  slightly smoothed noise); a pixel whose 2 x 2 stencil leaves the owner's image is NaN.

Cutout pixels whose owner brick has no file for a band, or that fall outside its image, are NaN;
:meth:`CoaddCutter.cut_many` turns too few finite pixels into a failed result with the reason.

Caching.  Opened brick images are kept in an LRU of ``cache_images`` entries (one per brick and
band).  ``decompress='section'`` decompresses only the tiles a cutout touches (best when cutouts are
spread out, ~1 cutout per brick, as in a training set); ``'full'`` decompresses whole images once
(best when many cutouts share a brick, as in deployment over a catalogue; 52 MB per cached image).
:meth:`~CoaddCutter.cut_many` sorts each batch by brick so that consecutive cutouts share cached
images.  The cutter serialises its own calls (one lock): use one per thread for parallel work.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from stronglens import bricks, storage
from stronglens.cutouts.http import FetchResult, utc_now_iso

if TYPE_CHECKING:
    from stronglens.cutouts.settings import CutoutSettings

log = logging.getLogger(__name__)

DEFAULT_IMAGE_TEMPLATE = "coadd/{prefix}/{brick}/legacysurvey-{brick}-image-{band}.fits.fz"


class CoaddError(ValueError):
    """A brick image exists but cannot be used (no 2-D image, no celestial WCS, wrong band)."""


@dataclass
class _BrickImage:
    """One opened brick image: its WCS, shape and either the HDU (section mode) or the pixels (full)."""

    uri: str
    wcs: WCS
    shape: tuple[int, int]
    hdul: fits.HDUList
    hdu: fits.ImageHDU | fits.CompImageHDU | fits.PrimaryHDU
    data: np.ndarray | None

    def block(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` as float32 (only the needed tiles are decompressed in section mode)."""
        if self.data is not None:
            return self.data[y0:y1, x0:x1]
        return np.asarray(self.hdu.section[y0:y1, x0:x1], dtype=np.float32)


class CoaddCutter:
    """Cut ``(size, size, len(bands))`` float32 cutouts (channels in the order of ``bands``) from brick
    coadds under ``root``; see the module docstring for geometry, methods and caching."""

    def __init__(
        self,
        root: str,
        *,
        bands: str,
        size: int,
        pixscale: float,
        method: Literal["nearest", "bilinear"] = "nearest",
        decompress: Literal["section", "full"] = "section",
        cache_images: int = 12,
        image_template: str = DEFAULT_IMAGE_TEMPLATE,
        min_finite_fraction: float = 0.9,
        batch_size: int = 256,
    ) -> None:
        if method not in ("nearest", "bilinear"):
            raise ValueError(f"method must be 'nearest' or 'bilinear', got {method!r}")
        if decompress not in ("section", "full"):
            raise ValueError(f"decompress must be 'section' or 'full', got {decompress!r}")
        if cache_images < 1 or batch_size < 1 or size < 1 or pixscale <= 0:
            raise ValueError("cache_images, batch_size and size must be >= 1 and pixscale > 0")
        if not bands or len(set(bands)) != len(bands):
            raise ValueError(f"bands must name distinct bands, e.g. 'grz'; got {bands!r}")
        self.root = root.rstrip("/")
        self.bands = bands
        self.size = size
        self.pixscale = pixscale
        self.method = method
        self.decompress = decompress
        self.cache_images = cache_images
        self.image_template = image_template
        self.min_finite_fraction = min_finite_fraction
        self.batch_size = batch_size
        self._cache: OrderedDict[tuple[str, str], _BrickImage | None] = OrderedDict()
        self._lock = threading.RLock()
        grid = np.arange(size, dtype=np.float64)
        self._px, self._py = (a.ravel() for a in np.meshgrid(grid, grid))

    @classmethod
    def from_settings(cls, settings: CutoutSettings, **options: Any) -> CoaddCutter:
        """A cutter over ``settings.coadd_root`` with its bands, size and pixel scale; ``options`` set
        the other constructor arguments (or override those, ``root`` included)."""
        values: dict[str, Any] = {
            "root": settings.coadd_root,
            "bands": settings.bands,
            "size": settings.size,
            "pixscale": settings.pixscale,
        }
        return cls(**{**values, **options})

    def __enter__(self) -> CoaddCutter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every cached brick file."""
        with self._lock:
            for image in self._cache.values():
                if image is not None:
                    image.hdul.close()
            self._cache.clear()

    def image_uri(self, brick: str, band: str) -> str:
        """Where the image of ``brick`` in ``band`` lives under the root."""
        relative = self.image_template.format(prefix=brick[:3], brick=brick, band=band)
        return f"{self.root}/{relative}"

    def cutout_wcs(self, ra: float, dec: float) -> WCS:
        """The viewer's cutout projection centred on ``(ra, dec)`` (see the module docstring)."""
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [ra, dec]
        wcs.wcs.crpix = [(self.size + 1) / 2.0, (self.size + 1) / 2.0]
        scale = self.pixscale / 3600.0
        wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]
        return wcs

    # -- brick images ------------------------------------------------------------------------------
    def _open(self, uri: str, band: str) -> _BrickImage | None:
        try:
            if storage.is_s3(uri):
                fs, path = storage.filesystem_for(uri)
                with fs.open_input_file(path) as fh:
                    hdul = fits.open(io.BytesIO(fh.readall()))
            else:
                hdul = fits.open(uri)
        except FileNotFoundError:
            return None
        try:
            hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS") == 2), None)
            if hdu is None:
                raise CoaddError(f"{uri}: no 2-D image HDU; expected a brick coadd image")
            file_band = str(hdu.header.get("BAND", band)).strip().lower()
            if file_band != band:
                raise CoaddError(f"{uri}: header BAND={file_band!r} but the file name says {band!r}")
            wcs = WCS(hdu.header)
            if not wcs.has_celestial or wcs.naxis != 2:
                raise CoaddError(f"{uri}: header has no 2-D celestial WCS")
            shape = (int(hdu.header["NAXIS2"]), int(hdu.header["NAXIS1"]))
            data = np.asarray(hdu.data, dtype=np.float32) if self.decompress == "full" else None
        except BaseException:
            hdul.close()
            raise
        return _BrickImage(uri, wcs, shape, hdul, hdu, data)

    def _image(self, brick: str, band: str) -> _BrickImage | None:
        key = (brick, band)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        image = self._open(self.image_uri(brick, band), band)
        self._cache[key] = image
        while len(self._cache) > self.cache_images:
            _, evicted = self._cache.popitem(last=False)
            if evicted is not None:
                evicted.hdul.close()
        return image

    # -- sampling ----------------------------------------------------------------------------------
    def _sample(self, image: _BrickImage, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Values of ``image`` at 0-based pixel coordinates ``(x, y)``; NaN outside the image."""
        height, width = image.shape
        out = np.full(x.shape, np.nan, dtype=np.float32)
        if self.method == "nearest":
            ix = np.floor(x + 0.5).astype(np.int64)
            iy = np.floor(y + 0.5).astype(np.int64)
            inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
            if inside.any():
                ix, iy = ix[inside], iy[inside]
                x0, y0 = ix.min(), iy.min()
                block = image.block(y0, iy.max() + 1, x0, ix.max() + 1)
                out[inside] = block[iy - y0, ix - x0]
            return out
        ix = np.floor(x).astype(np.int64)
        iy = np.floor(y).astype(np.int64)
        inside = (ix >= 0) & (ix + 1 < width) & (iy >= 0) & (iy + 1 < height)
        if inside.any():
            fx, fy = x[inside] - ix[inside], y[inside] - iy[inside]
            ix, iy = ix[inside], iy[inside]
            x0, y0 = ix.min(), iy.min()
            block = image.block(y0, iy.max() + 2, x0, ix.max() + 2).astype(np.float64)
            bx, by = ix - x0, iy - y0
            value = (
                (1 - fx) * (1 - fy) * block[by, bx]
                + fx * (1 - fy) * block[by, bx + 1]
                + (1 - fx) * fy * block[by + 1, bx]
                + fx * fy * block[by + 1, bx + 1]
            )
            out[inside] = value.astype(np.float32)
        return out

    def cutout_with_provenance(self, ra: float, dec: float) -> tuple[np.ndarray, list[str], list[str]]:
        """The cutout plus the bricks it touches and the image files that were missing."""
        ra_pix, dec_pix = self.cutout_wcs(ra, dec).pixel_to_world_values(self._px, self._py)
        ra_pix = np.mod(ra_pix, 360.0)
        owner = bricks.brick_id(ra_pix, dec_pix)
        ids, inverse = np.unique(owner, return_inverse=True)
        names = bricks.brick_name(ids)
        out = np.full((self._px.size, len(self.bands)), np.nan, dtype=np.float32)
        missing: list[str] = []
        with self._lock:
            for k, brick in enumerate(names.tolist()):  # the 1-4 bricks a cutout touches
                mine = np.flatnonzero(inverse == k)
                last_wcs, x, y = None, np.empty(0), np.empty(0)
                for b, band in enumerate(self.bands):
                    try:
                        image = self._image(brick, band)
                        if image is None:
                            missing.append(self.image_uri(brick, band))
                            continue
                        # The bands of a brick share one WCS: project once (the slowest step when cached).
                        if last_wcs is None or not image.wcs.wcs.compare(last_wcs.wcs):
                            x, y = (
                                np.asarray(v)
                                for v in image.wcs.world_to_pixel_values(ra_pix[mine], dec_pix[mine])
                            )
                            last_wcs = image.wcs
                        out[mine, b] = self._sample(image, x, y)
                    except CoaddError:
                        raise
                    except Exception as exc:  # a truncated or corrupt file: name it and say what to do
                        raise CoaddError(
                            f"{self.image_uri(brick, band)}: cannot read ({type(exc).__name__}: {exc}); "
                            "download the file again or remove it"
                        ) from exc
        return out.reshape(self.size, self.size, len(self.bands)), names.tolist(), missing

    def cutout(self, ra: float, dec: float) -> np.ndarray:
        """The ``(size, size, len(bands))`` float32 cutout centred on ``(ra, dec)``; NaN where no data."""
        return self.cutout_with_provenance(ra, dec)[0]

    def provenance_url(self, ra: float, dec: float, brick_names: Iterable[str]) -> str:
        """What the store records as ``meta_cutout_url`` for a coadd cutout."""
        return (
            f"{self.root}/coadd?ra={ra:.7f}&dec={dec:.7f}&bricks={','.join(brick_names)}&method={self.method}"
        )

    def cut_one(self, sample_id: Hashable, ra: float, dec: float) -> FetchResult:
        """One cutout as a :class:`FetchResult`; never raises.  ``attempts`` is 1 and ``bytes`` 0: nothing
        is downloaded (S3 brick reads are shared between cutouts, so they are not charged to one)."""
        try:
            image, names, missing = self.cutout_with_provenance(float(ra), float(dec))
        except Exception as exc:  # one bad cutout never fails the batch
            log.exception("coadd cutout %r at (%r, %r) failed", sample_id, ra, dec)
            reason = f"{type(exc).__name__}: {exc}"
            return FetchResult(sample_id, "failed", reason, 1, None, 0, self.root, utc_now_iso())
        url = self.provenance_url(ra, dec, names)
        finite = np.isfinite(image).mean(axis=(0, 1))
        if np.any(finite < self.min_finite_fraction):
            worst = ", ".join(f"{band}={f:.3f}" for band, f in zip(self.bands, finite, strict=True))
            reason = f"finite-pixel fraction below {self.min_finite_fraction}: {worst}"
            if missing:
                reason += f"; missing image files: {', '.join(missing)}"
            return FetchResult(sample_id, "failed", reason, 1, None, 0, url, utc_now_iso())
        return FetchResult(sample_id, "ok", None, 1, image, 0, url, utc_now_iso())

    def cut_many(self, requests_: Iterable[tuple[Hashable, float, float]]) -> Iterator[FetchResult]:
        """Cut ``(sample_id, ra, dec)`` requests; one result each.  Requests are read ``batch_size``
        at a time and each batch is processed in brick order (results come in that order)."""
        items = iter(requests_)
        while batch := list(islice(items, self.batch_size)):
            coords = np.array([(_float_or_nan(r[1]), _float_or_nan(r[2])) for r in batch], dtype=np.float64)
            valid = np.isfinite(coords).all(axis=1) & (np.abs(coords[:, 1]) <= 90.0)
            keys = np.zeros(len(batch), dtype=np.int64)
            keys[valid] = bricks.brick_id(np.mod(coords[valid, 0], 360.0), coords[valid, 1])
            for i in np.argsort(keys, kind="stable"):
                sample_id, ra, dec = batch[i]
                if not valid[i]:
                    reason = f"invalid coordinates ra={ra!r} dec={dec!r}"
                    yield FetchResult(sample_id, "failed", reason, 0, None, 0, self.root, utc_now_iso())
                    continue
                yield self.cut_one(sample_id, coords[i, 0], coords[i, 1])


def _float_or_nan(value: object) -> float:
    """``float(value)``, or NaN for what is not a number (it then fails as invalid coordinates)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan

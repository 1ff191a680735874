"""From the training manifest to tensors: reading cutouts, robust per-band normalisation, crops and
augmentations.

Reading: cutout locations come from the ``cutouts`` table's ``path`` (relative to the cutout root;
:func:`stronglens.cutouts.store.resolve_uri`), never from globbing store folders, and pixels are
read with the store's validating reader.  Every failure (missing file, unreadable NPZ, wrong shape,
too many NaN pixels) is collected and reported at once, naming each sample and file, so one rebuild
fixes them all instead of one per training attempt.

Normalisation (:func:`normalise`), shared by training and :class:`~stronglens.training.finder.Finder`
so injected images get exactly the training preprocessing: per cutout and band, subtract the median
of the outer annulus (4-16 px in from the edge: sky, clear of the central galaxy and of the arcs, the
same annulus as the QA ``background``) and divide by its MAD scaled to a Gaussian sigma; then an
``asinh`` stretch, which is linear (~1 sigma units) in the noise and logarithmic in the bright core,
so a 20th-magnitude galaxy does not drown a 23rd-magnitude arc.  Non-finite pixels (QA lets through
up to its ``max_nonfinite_frac`` outside the core) are set to the sky level (0 after normalisation);
a cutout with more than ``max_nonfinite_frac`` of them is an error naming the sample.

Windows: each normalised cutout is cropped once to a centred *window* of ``crop + 2 * shift`` pixels
(zero-padded = sky when the cutout is smaller) and cached as float16, so an epoch never touches the
store again; training draws a random ``crop`` inside the window (a shift of up to ``shift`` px), a
random flip and a random multiple of 90 degrees; evaluation takes the centred crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from stronglens.cutouts.store import CutoutFileError, read_cutout

#: Annulus of the sky statistics, as (inner, outer) distances in px in from the cutout edge.
ANNULUS_EDGE_MARGINS = (4.0, 16.0)
#: MAD -> Gaussian sigma.
MAD_TO_SIGMA = 1.4826
#: Floor of the sky sigma (nanomaggies): a flat band (a fill value) must not divide by zero.
MIN_SIGMA = 1e-6
#: Failures listed in full in an error message (the count says how many more).
ERRORS_SHOWN = 10


class TrainingDataError(ValueError):
    """The training data cannot be used as given; the message names the samples/files and the fix."""


@dataclass(frozen=True)
class Preprocessing:
    """What turns nanomaggie cutouts into network input; stored in every checkpoint."""

    crop: int = 64
    shift: int = 4
    max_nonfinite_frac: float = 0.02

    @property
    def window(self) -> int:
        """Side of the cached window (the crop plus the shift margin on each side)."""
        return self.crop + 2 * self.shift


def _annulus_mask(size: int) -> np.ndarray:
    centre = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.hypot(yy - centre, xx - centre)
    inner, outer = size / 2.0 - ANNULUS_EDGE_MARGINS[1], size / 2.0 - ANNULUS_EDGE_MARGINS[0]
    return (radius >= inner) & (radius <= outer)


def nonfinite_fractions(images: np.ndarray) -> np.ndarray:
    """Per-cutout fraction of non-finite pixels (any band)."""
    return (~np.isfinite(images)).mean(axis=(1, 2, 3))


def normalise(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` nanomaggies -> ``(N, 3, H, W)`` float32, sky-subtracted, in sky sigmas, asinh.

    Non-finite pixels become the sky level (0); a band without finite annulus pixels gets sky 0 and
    sigma :data:`MIN_SIGMA` (callers reject such cutouts before, by their non-finite fraction).
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected images of shape (N, H, H, 3) g/r/z, got {images.shape}")
    x = np.moveaxis(np.asarray(images, dtype=np.float32), -1, 1)  # N, 3, H, W
    mask = _annulus_mask(x.shape[-1])
    ring = x[:, :, mask]  # N, 3, n_ring
    # np.median is several times faster than np.nanmedian and equal when every pixel is finite.
    median = np.median if np.isfinite(ring).all() else np.nanmedian
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        sky = median(ring, axis=2)
        mad = median(np.abs(ring - sky[:, :, None]), axis=2)
    sky = np.nan_to_num(sky, nan=0.0)
    sigma = np.maximum(np.nan_to_num(mad * MAD_TO_SIGMA, nan=MIN_SIGMA), MIN_SIGMA)
    z = (x - sky[:, :, None, None]) / sigma[:, :, None, None]
    z = np.where(np.isfinite(z), z, 0.0)
    return np.arcsinh(z).astype(np.float32)


class _quiet_nan_warnings:  # noqa: N801 - used like a function
    """All-NaN slices are handled explicitly above; silence numpy's RuntimeWarning for them."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def centre_window(x: np.ndarray, size: int) -> np.ndarray:
    """Centred ``size`` x ``size`` crop of ``(N, C, H, W)``, zero-padded (sky) when H < size."""
    h = x.shape[-1]
    if h >= size:
        start = (h - size) // 2
        return x[:, :, start : start + size, start : start + size]
    before = (size - h) // 2
    after = size - h - before
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


def to_windows(images: np.ndarray, prep: Preprocessing, names: Sequence[str] | None = None) -> np.ndarray:
    """Check, normalise and window a batch of nanomaggie cutouts -> ``(N, 3, window, window)`` float32.

    ``names`` (sample ids or file names) make the non-finite error point at the cutouts."""
    bad = np.flatnonzero(nonfinite_fractions(images) > prep.max_nonfinite_frac)
    if bad.size:
        labels = [names[i] if names is not None else f"image {i}" for i in bad[:ERRORS_SHOWN]]
        raise TrainingDataError(
            f"{bad.size} cutout(s) have more than {prep.max_nonfinite_frac:.0%} non-finite pixels: "
            f"{', '.join(map(str, labels))}{' ...' if bad.size > ERRORS_SHOWN else ''}. They should have "
            "failed cutout QA: rebuild cutouts/cutout_qa (delete the files to refetch them)."
        )
    return centre_window(normalise(images), prep.window)


def read_images(sample_ids: Sequence[str], uris: Sequence[str], size: int, threads: int = 4) -> np.ndarray:
    """Read cutouts ``(N, size, size, 3)`` float32 from the store with ``threads`` readers.

    Every unreadable file is collected; one :class:`TrainingDataError` lists them (sample id, file,
    reason) with the way out."""
    out = np.empty((len(uris), size, size, 3), dtype=np.float32)
    failures: list[str] = []

    def read(i: int) -> None:
        try:
            out[i] = read_cutout(uris[i], expected_shape=(size, size, 3))[0]
        except (CutoutFileError, OSError) as exc:
            failures.append(f"sample {sample_ids[i]}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(read, range(len(uris))))
    if failures:
        failures.sort()
        raise TrainingDataError(
            f"{len(failures)} cutout file(s) of the training manifest cannot be read:\n  "
            + "\n  ".join(failures[:ERRORS_SHOWN])
            + ("\n  ..." if len(failures) > ERRORS_SHOWN else "")
            + "\nRebuild the cutouts (`stronglens build --select cutouts+`): missing or corrupt files "
            "are refetched."
        )
    return out


def load_windows(
    sample_ids: Sequence[str],
    uris: Sequence[str],
    prep: Preprocessing,
    size: int,
    chunk: int = 1024,
    threads: int = 4,
) -> torch.Tensor:
    """Read, check, normalise and window every cutout -> float16 ``(N, 3, window, window)`` tensor.

    Chunked so the float32 nanomaggie arrays of at most ``chunk`` cutouts exist at a time."""
    windows = torch.empty((len(uris), 3, prep.window, prep.window), dtype=torch.float16)
    for start in range(0, len(uris), chunk):
        ids = list(sample_ids[start : start + chunk])
        images = read_images(ids, list(uris[start : start + chunk]), size, threads)
        windows[start : start + len(ids)] = torch.from_numpy(to_windows(images, prep, ids))
    return windows


def augment(windows: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop (shift), horizontal flip and 90-degree rotation per image of ``(B, 3, W, W)``.

    The eight flips/rotations are the symmetries of the pixel grid, under which a lens stays a lens;
    shifts of a few px teach that the lens need not sit on the exact central pixel."""
    b, c, w, _ = windows.shape
    x = windows.float()
    if w > crop:
        oy = torch.randint(0, w - crop + 1, (b,), generator=generator)
        ox = torch.randint(0, w - crop + 1, (b,), generator=generator)
        idx = torch.arange(crop)
        rows = (oy[:, None] + idx)[:, None, :, None]
        cols = (ox[:, None] + idx)[:, None, None, :]
        x = x[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.randint(0, 2, (b,), generator=generator).bool()
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    turns = torch.randint(0, 4, (b,), generator=generator)
    for k in (1, 2, 3):
        chosen = turns == k
        if chosen.any():
            x[chosen] = torch.rot90(x[chosen], k, (2, 3))
    return x.contiguous()


def centre_crop(windows: torch.Tensor, crop: int) -> torch.Tensor:
    """The evaluation view: the centred ``crop`` of each window, float32."""
    w = windows.shape[-1]
    start = (w - crop) // 2
    return windows[:, :, start : start + crop, start : start + crop].float().contiguous()

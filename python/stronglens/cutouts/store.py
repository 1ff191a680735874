"""The cutout store: one compressed NPZ per cutout, local or ``s3://``, written atomically.

The established file format (what training code reads), written with ``numpy.savez_compressed``
and read back with ``allow_pickle=False``:

========================== =========================================================
``cutout``                 float32 ``(size, size, len(bands))``, channels as ``bands`` (nanomaggies/pixel)
``meta_galaxy_id``         0-d str (or int) -- the warehouse's galaxy / sample identifier
``meta_ra``, ``meta_dec``  0-d float64, degrees (the cutout centre)
``meta_type``              0-d str, Tractor TYPE (PSF, REX, DEV, EXP, SER, ...)
``meta_nobs_z``            0-d int64, number of z-band passes
``meta_psfsize_z``         0-d float64, z-band PSF FWHM, arcsec
``meta_flux_r``            0-d float64, r-band flux, nanomaggies
``meta_cutout_url``        0-d str, where the pixels came from (request URL or coadd provenance)
``meta_download_timestamp`` 0-d str, UTC ISO-8601 time the pixels were obtained
========================== =========================================================

Path scheme: ``<root>/<path_template>``, default ``{params_key}/{sample_id}.npz`` -- keyed by content
(the sample and a hash of the render/fetch parameters, macro ``cutout_params_key``), never by split:
the split is a column of the ``cutouts`` table, which is where consumers read paths from.  Field
values must be plain names (no ``/``, ``\\``, ``..``,
control characters) so an identifier can never write outside its folder.

Atomicity: the whole NPZ is built in memory, hashed (sha256 and byte count are returned for the
``cutouts`` table), then published through :func:`stronglens.storage.atomic_output` (local: hidden
``.part`` file + fsync + rename; S3: one upload of a finished file), so a run killed half way
leaves either the complete old file, the complete new file, or nothing -- never a partial NPZ
under the final name.  :func:`plan_refetch` then finds what a rerun must fetch.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from stronglens import storage

DEFAULT_PATH_TEMPLATE = "{params_key}/{sample_id}.npz"
CUTOUT_KEY = "cutout"
META_PREFIX = "meta_"
_FORBIDDEN_IN_NAMES = ("/", "\\", "\x00")


class CutoutFileError(ValueError):
    """A stored cutout is missing, unreadable or not in the established format; names the file."""


@dataclass(frozen=True)
class CutoutMeta:
    """The ``meta_*`` fields of a cutout file (names without the prefix)."""

    galaxy_id: str | int
    ra: float
    dec: float
    type: str
    nobs_z: int
    psfsize_z: float
    flux_r: float
    cutout_url: str
    download_timestamp: str

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The NPZ entries (0-d arrays with the format's dtypes)."""
        gid = self.galaxy_id
        return {
            "meta_galaxy_id": np.asarray(
                gid, dtype=np.int64 if isinstance(gid, int | np.integer) else np.str_
            ),
            "meta_ra": np.asarray(self.ra, dtype=np.float64),
            "meta_dec": np.asarray(self.dec, dtype=np.float64),
            "meta_type": np.asarray(self.type, dtype=np.str_),
            "meta_nobs_z": np.asarray(self.nobs_z, dtype=np.int64),
            "meta_psfsize_z": np.asarray(self.psfsize_z, dtype=np.float64),
            "meta_flux_r": np.asarray(self.flux_r, dtype=np.float64),
            "meta_cutout_url": np.asarray(self.cutout_url, dtype=np.str_),
            "meta_download_timestamp": np.asarray(self.download_timestamp, dtype=np.str_),
        }


#: Every ``meta_*`` key of the format, in the documented order.
META_KEYS = tuple(META_PREFIX + f.name for f in fields(CutoutMeta))
#: Accepted numpy dtype kinds per meta key ('U' str, 'f' float, 'i'/'u' integer).
_META_KINDS = {
    "meta_galaxy_id": "Uiu",
    "meta_ra": "f",
    "meta_dec": "f",
    "meta_type": "U",
    "meta_nobs_z": "iu",
    "meta_psfsize_z": "f",
    "meta_flux_r": "f",
    "meta_cutout_url": "U",
    "meta_download_timestamp": "U",
}


@dataclass(frozen=True)
class WrittenCutout:
    """What :func:`write_cutout` published: where, how many bytes, and their sha256 (hex)."""

    path: str
    bytes: int
    sha256: str


def cutout_path(root: str, path_template: str = DEFAULT_PATH_TEMPLATE, **fields_: object) -> str:
    """``<root>/<path_template formatted with fields_>``; root may be a folder or an ``s3://`` prefix."""
    for name, value in fields_.items():
        text = str(value)
        if (
            not text
            or text in (".", "..")
            or any(c in text for c in _FORBIDDEN_IN_NAMES)
            or not text.isprintable()
        ):
            raise ValueError(
                f"path field {name}={text!r} is not a plain file name (empty, '.', '..', a path separator "
                "or a control character); fix the manifest value"
            )
    try:
        relative = path_template.format(**fields_)
    except KeyError as exc:
        raise ValueError(
            f"path_template {path_template!r} needs field {exc}; pass it to cutout_path"
        ) from exc
    return root.rstrip("/") + "/" + relative if storage.is_s3(root) else os.path.join(root, relative)


def _check_cutout(cutout: np.ndarray, expected_shape: tuple[int, ...] | None, where: str) -> np.ndarray:
    """The array if it is float32 of ``expected_shape`` (the settings' ``shape``); with None, any
    square ``(n, n, channels)`` array passes (readers that take the shape from the file)."""
    array = np.asarray(cutout)
    if expected_shape is None:
        square = array.ndim == 3 and array.shape[0] == array.shape[1] and array.shape[2] >= 1
        if not square:
            raise CutoutFileError(f"{where}: cutout has shape {array.shape}, expected (n, n, channels)")
    elif array.shape != expected_shape:
        raise CutoutFileError(
            f"{where}: cutout has shape {array.shape}, expected {expected_shape} (H, W, g/r/z)"
        )
    if array.dtype != np.float32:
        raise CutoutFileError(f"{where}: cutout dtype is {array.dtype}, expected float32")
    return array


def encode_cutout(
    cutout: np.ndarray, meta: CutoutMeta, expected_shape: tuple[int, ...] | None = None
) -> bytes:
    """The NPZ bytes of one cutout (validated first: shape and float32 are part of the format)."""
    array = _check_cutout(cutout, expected_shape, f"cutout for galaxy {meta.galaxy_id!r}")
    buffer = io.BytesIO()
    # uncompressed: zlib saves ~6% on sky-noise floats but costs ~15 ms a cutout, more than
    # rendering it; np.load reads both kinds, so earlier compressed stores stay readable
    np.savez(buffer, **{CUTOUT_KEY: array}, **meta.to_arrays())
    return buffer.getvalue()


def write_cutout(
    uri: str, cutout: np.ndarray, meta: CutoutMeta, expected_shape: tuple[int, ...] | None = None
) -> WrittenCutout:
    """Write one cutout NPZ atomically at ``uri`` (local path or ``s3://``); return size and sha256."""
    data = encode_cutout(cutout, meta, expected_shape)
    with storage.atomic_output(uri) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return WrittenCutout(uri, len(data), hashlib.sha256(data).hexdigest())


#: numpy parses every .npy header with ``ast.literal_eval``, and CPython 3.11 before 3.11.8 can raise
#: ``SystemError: AST constructor recursion depth mismatch`` when threads do that at once
#: (python/cpython#106905); the cutout readers run in thread pools, so parsing is serialised (the
#: I/O before it stays parallel). Seen on 3.11.7 as a cutout_qa failure in one build out of ~20.
_NPZ_PARSE_LOCK = threading.Lock()


def decode_cutout(
    data: bytes, where: str, expected_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, CutoutMeta]:
    """Parse and validate NPZ bytes; ``where`` names the file in errors."""
    try:
        with _NPZ_PARSE_LOCK, np.load(io.BytesIO(data), allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [k for k in (CUTOUT_KEY, *META_KEYS) if k not in keys]
            extra = sorted(keys - {CUTOUT_KEY, *META_KEYS})
            if missing or extra:
                raise CutoutFileError(
                    f"{where}: not the cutout format: missing keys {missing}, unexpected {extra}"
                )
            arrays = {k: npz[k] for k in (CUTOUT_KEY, *META_KEYS)}
    except CutoutFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CutoutFileError(
            f"{where}: unreadable NPZ ({type(exc).__name__}: {exc}); delete it and refetch"
        ) from exc
    cutout = _check_cutout(arrays[CUTOUT_KEY], expected_shape, where)
    for key in META_KEYS:
        value = arrays[key]
        if value.shape != () or value.dtype.kind not in _META_KINDS[key]:
            raise CutoutFileError(
                f"{where}: {key} is {value.dtype} with shape {value.shape}; expected a scalar of kind "
                f"{_META_KINDS[key]!r}"
            )
    meta = CutoutMeta(**{key[len(META_PREFIX) :]: arrays[key].item() for key in META_KEYS})
    try:
        datetime.fromisoformat(meta.download_timestamp)
    except ValueError as exc:
        raise CutoutFileError(
            f"{where}: meta_download_timestamp {meta.download_timestamp!r} is not ISO-8601"
        ) from exc
    return cutout, meta


def read_bytes(uri: str) -> bytes:
    """All bytes of a local or ``s3://`` file; a missing file raises :class:`CutoutFileError`."""
    fs, path = storage.filesystem_for(uri)
    try:
        with fs.open_input_file(path) as fh:
            return fh.readall()
    except FileNotFoundError as exc:
        raise CutoutFileError(f"{uri}: no such cutout file") from exc


def read_cutout(uri: str, expected_shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, CutoutMeta]:
    """Read and validate one cutout file; return the ``(H, W, 3)`` float32 array and its meta."""
    return decode_cutout(read_bytes(uri), uri, expected_shape)


def resolve_uri(path: str, root: str | None) -> str:
    """Where a cutout named in a ``cutouts`` table lives: the table stores paths relative to the
    cutout root (``<cutout_params_key>/<sample_id>.npz``) so a copied or moved warehouse reads its
    own store; absolute paths and ``s3://`` URIs (tables of older builds) are used as they are."""
    if storage.is_s3(path) or path.startswith("/") or not root:
        return path
    return storage.join_uri(root, path)


def _filesystem_paths(uris: pa.Array, s3: bool) -> pa.Array:
    """Vectorised form of :func:`storage.filesystem_for`'s path for URIs all of one kind."""
    if s3:
        return pc.utf8_slice_codeunits(uris, len(storage.S3_SCHEME))
    absolute = pc.starts_with(uris, "/")
    return pc.if_else(absolute, uris, pc.binary_join_element_wise(os.getcwd(), uris, "/"))


def plan_refetch(
    sample_ids: Sequence[Hashable] | pa.Array,
    paths: Sequence[str] | pa.Array,
    check: Literal["exists", "read"] = "read",
    recorded_sha256: Mapping[str, str] | None = None,
    expected_shape: tuple[int, ...] | None = None,
    read_concurrency: int = 8,
) -> pa.Table:
    """Which of the wanted ``(sample_id, path)`` cutouts a run must (re)fetch, with the reason.

    Existence is decided from one listing per folder (not one request per file -- on S3 that is the
    difference between a few LIST calls and a HEAD per cutout).  ``check='exists'`` stops there
    (plus: empty files are refetched); ``check='read'`` also reads and validates every present file
    and, where ``recorded_sha256`` (path -> hex digest, e.g. from the ``cutouts`` table) knows the
    file, compares its hash, reading with ``read_concurrency`` threads because S3 reads are latency
    bound.  Returns a table ``sample_id, path, reason`` in input order; hidden ``.part`` leftovers of
    killed runs never count as present.
    """
    uris = pa.array(paths, type=pa.string())
    ids = pa.array(sample_ids) if not isinstance(sample_ids, pa.Array) else sample_ids
    if len(ids) != len(uris):
        raise ValueError(f"plan_refetch: {len(ids)} sample ids but {len(uris)} paths")
    if uris.null_count:
        raise ValueError("plan_refetch: some paths are null; every wanted sample needs a target path")
    s3_mask = pc.starts_with(pc.utf8_lower(uris), storage.S3_SCHEME)
    n_s3 = pc.sum(s3_mask).as_py() or 0
    if 0 < n_s3 < len(uris):
        raise ValueError("plan_refetch: paths mix s3:// and local files; use one cutout root per run")
    s3 = n_s3 > 0 and n_s3 == len(uris)
    fs_paths = _filesystem_paths(uris, s3)
    parents = pc.replace_substring_regex(fs_paths, r"/[^/]*$", "")
    listed_paths: list[str] = []
    listed_sizes: list[int] = []
    for parent in pc.unique(parents).to_pylist():  # one listing per folder: a handful per run
        fs, _ = storage.filesystem_for(("s3://" if s3 else "") + parent)
        for info in fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True, recursive=False)):
            if info.type == pafs.FileType.File:
                listed_paths.append(info.path)
                listed_sizes.append(info.size)
    position = pc.index_in(fs_paths, value_set=pa.array(listed_paths, type=pa.string()))
    sizes = pc.take(pa.array(listed_sizes, type=pa.int64()), position)
    reasons = pc.if_else(pc.is_null(position), "missing", pc.if_else(pc.equal(sizes, 0), "empty file", None))
    reason_list = reasons.to_pylist()
    if check == "read":
        present = np.flatnonzero(np.asarray(pc.is_null(reasons).to_numpy(zero_copy_only=False)))
        uri_list = uris.to_pylist()
        recorded = recorded_sha256 or {}

        def verdict(i: int) -> str | None:
            uri = uri_list[i]
            try:
                data = read_bytes(uri)
                decode_cutout(data, uri, expected_shape)
            except CutoutFileError as exc:
                return f"invalid: {exc}"
            want = recorded.get(uri)
            if want is not None and hashlib.sha256(data).hexdigest() != want:
                return "sha256 differs from the recorded one"
            return None

        with ThreadPoolExecutor(max_workers=read_concurrency) as pool:
            for i, reason in zip(present, pool.map(verdict, present), strict=True):
                reason_list[i] = reason
    elif check != "exists":
        raise ValueError(f"check must be 'exists' or 'read', got {check!r}")
    table = pa.table({"sample_id": ids, "path": uris, "reason": pa.array(reason_list, type=pa.string())})
    return table.filter(pc.is_valid(table["reason"]))

"""Tests for :mod:`stronglens.convert` (FITS sweeps -> Parquet).

Synthetic files are written byte by byte here (header cards + big-endian rows), independently of
both the converter and astropy's table writer, so the expected values are known exactly, including
what astropy cannot write (FITS null logicals, NUL-padded strings, TNULL on scaled columns).
Real Legacy Surveys DR8 sweeps come from the ``desitarget`` wheel and are checked against astropy.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from stronglens import convert, storage
from stronglens.convert import SweepConvertError, convert_sweeps

ROOT = Path(__file__).resolve().parents[1]
WHEEL_GLOB = "desitarget-*.whl"
REAL_SWEEPS = (
    "sweep-310m005-320p000.fits",
    "sweep-320m005-330p000.fits",
    "sweep-330m005-340p000.fits",
)
FITS_BLOCK = 2880


# --------------------------------------------------------------------------------------------------
# An independent FITS binary-table writer and the columns it is fed
# --------------------------------------------------------------------------------------------------


@dataclass
class RawColumn:
    """One column as stored on disk plus what the Parquet output must hold.

    ``raw``: shape ``(n, *field shape)`` in the on-disk dtype (big-endian), or None for zero width.
    ``leaf``: expected fully flattened leaf values (C order): a native numpy array, or a list of str.
    ``nulls``: expected null mask of the leaf values (None = no nulls).
    """

    ttype: str
    tform: str
    raw: np.ndarray | None
    arrow_type: pa.DataType
    leaf: np.ndarray | list[str] | None
    nulls: np.ndarray | None = None
    cards: dict[str, Any] = field(default_factory=dict)


def fits_bytes(columns: list[RawColumn], n_rows: int, extra_cards: dict[str, Any] | None = None) -> bytes:
    """Serialise a primary HDU plus one BINTABLE HDU holding ``columns``."""
    present = [c for c in columns if c.raw is not None]
    dtype = np.dtype([(f"f{i}", c.raw.dtype, c.raw.shape[1:]) for i, c in enumerate(present)])
    rows = np.zeros(n_rows, dtype=dtype)
    for i, c in enumerate(present):
        rows[f"f{i}"] = c.raw
    header = fits.Header(
        [
            ("XTENSION", "BINTABLE"),
            ("BITPIX", 8),
            ("NAXIS", 2),
            ("NAXIS1", dtype.itemsize),
            ("NAXIS2", n_rows),
            ("PCOUNT", 0),
            ("GCOUNT", 1),
            ("TFIELDS", len(columns)),
        ]
    )
    for i, c in enumerate(columns, start=1):
        header[f"TTYPE{i}"] = c.ttype
        header[f"TFORM{i}"] = c.tform
        for key, value in c.cards.items():
            header[f"{key}{i}"] = value
    for key, value in (extra_cards or {}).items():
        header[key] = value
    data = rows.tobytes()
    data += b"\0" * (-len(data) % FITS_BLOCK)
    return (fits.PrimaryHDU().header.tostring() + header.tostring()).encode("ascii") + data


def write_fits(path: Path, columns: list[RawColumn], n_rows: int, **kw: Any) -> Path:
    path.write_bytes(fits_bytes(columns, n_rows, **kw))
    return path


def _be(a: np.ndarray) -> np.ndarray:
    """The same values in big-endian storage order."""
    return a.astype(a.dtype.newbyteorder(">"))


def _specials(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    """Random floats with NaN (incl. a payload NaN), infinities, -0.0, subnormals and extremes."""
    info = np.finfo(dtype)
    vals = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, info.smallest_subnormal, info.max, info.min], dtype)
    k = min(n, len(specials))
    vals[:k] = specials[:k]
    if n > k:
        uint = np.uint32 if dtype == np.float32 else np.uint64
        vals[k : k + 1] = np.array([0x7FC00001 if dtype == np.float32 else 0x7FF8000000000123], uint).view(
            dtype
        )
    return vals


def _random_fits_strings(rng: np.random.Generator, n: int, width: int) -> tuple[np.ndarray, list[str]]:
    """Fixed-width strings with space or NUL padding, leading/inner spaces and stray NULs."""
    printable = np.frombuffer(bytes(range(0x21, 0x7F)), np.uint8)
    chars = rng.choice(printable, size=(n, width))
    chars[rng.random((n, width)) < 0.15] = ord(" ")
    lengths = rng.integers(0, width + 1, n)
    pad = np.where(rng.random(n) < 0.5, ord(" "), 0)
    cols = np.arange(width)
    chars = np.where(cols[None, :] < lengths[:, None], chars, pad[:, None]).astype(np.uint8)
    fixed = [b" " * width, b"\0" * width, (b"  ab" + b" " * width)[:width], (b"a\0b" + b"\0" * width)[:width]]
    for i, s in enumerate(fixed[: min(n, len(fixed))]):
        chars[i] = np.frombuffer(s, np.uint8)
    raw = chars.view(f"S{width}").reshape(n)
    expected = [bytes(r).split(b"\0")[0].rstrip(b" ").decode() for r in chars]
    return raw, expected


def _bits(raw: np.ndarray, nbits: int) -> np.ndarray:
    """Expected X-column bits, MSB first, via big integers (independent of np.unpackbits)."""
    width = raw.shape[1] * 8
    return np.array(
        [[(int.from_bytes(bytes(r), "big") >> (width - 1 - k)) & 1 for k in range(nbits)] for r in raw], bool
    )


def synthetic_columns(rng: np.random.Generator, n: int) -> list[RawColumn]:
    """Every FITS binary-table type a sweep can hold, plus the rarer ones, with adversarial values."""
    i16, i32 = np.iinfo(np.int16), np.iinfo(np.int32)
    cols: list[RawColumn] = []

    def ints(dtype: type, lo: int | None = None, hi: int | None = None) -> np.ndarray:
        info = np.iinfo(dtype)
        lo, hi = info.min if lo is None else lo, info.max if hi is None else hi
        vals = rng.integers(lo, hi, n, dtype=dtype, endpoint=True)
        vals[: min(n, 2)] = [lo, hi][: min(n, 2)]
        return vals

    release = ints(np.int16)
    cols.append(RawColumn("RELEASE", "I", _be(release), pa.int16(), release))
    brickid = ints(np.int32)
    cols.append(RawColumn("BRICKID", "J", _be(brickid), pa.int32(), brickid))
    brickname, names = _random_fits_strings(rng, n, 8)
    cols.append(RawColumn("BRICKNAME", "8A", brickname, pa.string(), names))
    types = np.array([b"PSF", b"REX", b"DEV", b"EXP", b"SER", b"DUP", b"PS ", b"   "], "S3")[
        rng.integers(0, 8, n)
    ]
    cols.append(RawColumn("TYPE", "3A", types, pa.string(), [t.decode().rstrip() for t in types]))
    ra = _specials(rng, n, np.float64)
    cols.append(RawColumn("RA", "D", _be(ra), pa.float64(), ra, cards={"TUNIT": "deg"}))
    flux = _specials(rng, n, np.float32)
    cols.append(RawColumn("FLUX_G", "E", _be(flux), pa.float32(), flux))
    ref_id = ints(np.int64)
    cols.append(RawColumn("REF_ID", "K", _be(ref_id), pa.int64(), ref_id))
    wise = ints(np.uint8)
    cols.append(RawColumn("WISEMASK_W1", "B", wise, pa.uint8(), wise))

    logical = np.array([ord("T"), ord("F"), 0], np.int8)[rng.integers(0, 3, n)]
    cols.append(
        RawColumn("GAIA_DUPLICATED_SOURCE", "L", logical, pa.bool_(), logical == ord("T"), logical == 0)
    )
    logical3 = np.array([ord("T"), ord("F"), 0], np.int8)[rng.integers(0, 3, (n, 3))]
    cols.append(
        RawColumn(
            "FLAGS3",
            "3L",
            logical3,
            pa.list_(pa.bool_(), 3),
            (logical3 == ord("T")).ravel(),
            (logical3 == 0).ravel(),
        )
    )
    dchisq = rng.standard_normal((n, 5)).astype(np.float32)
    cols.append(RawColumn("DCHISQ", "5E", _be(dchisq), pa.list_(pa.float32(), 5), dchisq.ravel()))
    ap = rng.standard_normal((n, 2, 3))
    cols.append(
        RawColumn(
            "APFLUX",
            "6D",
            _be(ap),
            pa.list_(pa.list_(pa.float64(), 3), 2),
            ap.ravel(),
            cards={"TDIM": "(3,2)"},
        )
    )

    nobs = rng.integers(-1, 12, n).astype(np.int16)
    cols.append(RawColumn("NOBS_G", "I", _be(nobs), pa.int16(), nobs, nobs == -1, cards={"TNULL": -1}))
    raw16 = ints(np.int16)
    u16 = np.array([int(v) + 2**15 for v in raw16], np.uint16)
    cols.append(RawColumn("U16", "I", _be(raw16), pa.uint16(), u16, cards={"TZERO": 32768}))
    raw32 = ints(np.int32)
    u32 = np.array([int(v) + 2**31 for v in raw32], np.uint32)
    cols.append(RawColumn("U32", "J", _be(raw32), pa.uint32(), u32, cards={"TZERO": 2**31}))
    raw64 = ints(np.int64)
    u64 = np.array([int(v) + 2**63 for v in raw64], np.uint64)
    cols.append(RawColumn("U64", "K", _be(raw64), pa.uint64(), u64, cards={"TZERO": 2**63}))
    raw8 = ints(np.uint8)
    s8 = np.array([int(v) - 128 for v in raw8], np.int8)
    cols.append(RawColumn("S8", "B", raw8, pa.int8(), s8, cards={"TZERO": -128}))

    scaled = ints(np.int32, i32.min, i32.max)
    cols.append(
        RawColumn(
            "SCALED",
            "J",
            _be(scaled),
            pa.float64(),
            np.array([float(v) * 0.001 + 10.5 for v in scaled]),
            scaled == i32.max,
            cards={"TSCAL": 0.001, "TZERO": 10.5, "TNULL": int(i32.max)},
        )
    )
    scaled_u = ints(np.int16, i16.min, i16.max)
    cols.append(
        RawColumn(
            "SCALED_NOT_UNSIGNED",
            "I",
            _be(scaled_u),
            pa.float64(),
            np.array([float(v) * 2.0 + 32768.0 for v in scaled_u]),
            cards={"TSCAL": 2.0, "TZERO": 32768},
        )
    )
    fscaled = rng.standard_normal(n).astype(np.float32)
    cols.append(
        RawColumn(
            "FSCALED",
            "E",
            _be(fscaled),
            pa.float64(),
            fscaled.astype(np.float64) * 2.0 - 1.0,
            cards={"TSCAL": 2.0, "TZERO": -1.0},
        )
    )
    bit1 = rng.integers(0, 256, (n, 1), dtype=np.uint8)
    cols.append(RawColumn("BIT1", "1X", bit1, pa.bool_(), _bits(bit1, 1).ravel()))
    bit11 = rng.integers(0, 256, (n, 2), dtype=np.uint8)
    cols.append(RawColumn("BITS11", "11X", bit11, pa.list_(pa.bool_(), 11), _bits(bit11, 11).ravel()))

    cplx = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    cols.append(
        RawColumn(
            "CPLX",
            "C",
            _be(cplx),
            pa.list_(pa.float32(), 2),
            np.stack([cplx.real, cplx.imag], axis=1).ravel(),
        )
    )
    mplx = rng.standard_normal((n, 2)) + 1j * rng.standard_normal((n, 2))
    cols.append(
        RawColumn(
            "MPLX",
            "2M",
            _be(mplx),
            pa.list_(pa.list_(pa.float64(), 2), 2),
            np.stack([mplx.real, mplx.imag], axis=2).ravel(),
        )
    )
    strs, str_expected = _random_fits_strings(rng, 3 * n, 4)
    cols.append(
        RawColumn(
            "NAMES",
            "12A",
            strs.reshape(n, 3),
            pa.list_(pa.string(), 3),
            str_expected,
            cards={"TDIM": "(4,3)"},
        )
    )
    old, old_expected = _random_fits_strings(rng, 2 * n, 5)
    cols.append(RawColumn("OLDSTR", "10A5", old.reshape(n, 2), pa.list_(pa.string(), 2), old_expected))
    cols.append(RawColumn("NOTHING", "0E", None, pa.null(), None))
    return cols


def leaf_of(col: pa.ChunkedArray) -> pa.Array:
    """Flatten nested lists down to the leaf values (C order); DuckDB hands fixed-size lists back as lists."""
    arr = col.combine_chunks()
    while pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type):
        arr = arr.flatten()
    return arr


def assert_leaf_equal(
    got: pa.Array, want: np.ndarray | list[str], nulls: np.ndarray | None, where: str
) -> None:
    """Bit-exact comparison (NaN payloads and -0.0 included), with the null mask checked separately."""
    got_nulls = got.is_null().to_numpy(zero_copy_only=False)
    want_nulls = np.zeros(len(want), bool) if nulls is None else np.asarray(nulls)
    np.testing.assert_array_equal(got_nulls, want_nulls, err_msg=f"{where}: null mask")
    if isinstance(want, list):
        assert [None if m else s for s, m in zip(got.to_pylist(), got_nulls, strict=True)] == [
            None if m else s for s, m in zip(want, want_nulls, strict=True)
        ], where
        return
    values = got.fill_null(False if pa.types.is_boolean(got.type) else 0).to_numpy(zero_copy_only=False)
    assert values.dtype.isnative, where
    want = np.where(want_nulls, np.zeros(1, want.dtype), want) if want_nulls.any() else want
    if values.dtype.kind == "f":
        assert values.dtype == want.dtype, where
        bits = {4: np.uint32, 8: np.uint64}[values.dtype.itemsize]
        np.testing.assert_array_equal(values.view(bits), want.view(bits), err_msg=where)
    else:
        np.testing.assert_array_equal(values, want, err_msg=where, strict=True)


def assert_output_matches(table: pa.Table, columns: list[RawColumn], n_rows: int) -> None:
    assert table.num_rows == n_rows
    assert table.column_names == [c.ttype.lower() for c in columns]
    for c in columns:
        col = table[c.ttype.lower()]
        assert col.type == c.arrow_type, c.ttype
        if c.leaf is None:
            assert col.null_count == n_rows
            continue
        assert_leaf_equal(leaf_of(col), c.leaf, c.nulls, c.ttype)


# --------------------------------------------------------------------------------------------------
# Synthetic round trips
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "n_rows", "chunk_rows", "row_group_rows"),
    [(1, 1003, 97, 250), (2, 500, 1000, 64), (3, 257, 1, 300), (4, 1, 7, 1), (5, 64, 64, 64)],
)
def test_synthetic_round_trip(
    tmp_path: Path, seed: int, n_rows: int, chunk_rows: int, row_group_rows: int
) -> None:
    rng = np.random.default_rng(seed)
    columns = synthetic_columns(rng, n_rows)
    src = write_fits(tmp_path / "sweep-000m010-005m005.fits", columns, n_rows)
    [result] = convert_sweeps([str(src)], str(tmp_path / "out"), chunk_rows, row_group_rows, progress=False)
    assert result.status == "converted" and result.rows == n_rows
    assert result.output == str(tmp_path / "out" / "sweep-000m010-005m005.parquet")
    assert_output_matches(pq.read_table(result.output), columns, n_rows)

    meta = pq.read_metadata(result.output)
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [row_group_rows] * (n_rows // row_group_rows) + (
        [n_rows % row_group_rows] * (n_rows % row_group_rows > 0)
    )
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}
    footer = convert.read_footer_metadata(result.output)
    assert footer["stronglens.source_name"] == src.name
    assert footer["stronglens.source_rows"] == str(n_rows)
    assert footer["stronglens.source_size"] == str(src.stat().st_size)
    assert footer["stronglens.converter_version"] == convert.CONVERTER_VERSION
    assert "XTENSION= 'BINTABLE'" in footer["stronglens.fits_header"]
    ra = pq.read_schema(result.output).field("ra").metadata
    assert ra == {b"fits_name": b"RA", b"fits_tform": b"D", b"unit": b"deg"}


def test_astropy_reads_the_synthetic_file_like_we_expect(tmp_path: Path) -> None:
    """Guards the hand-written FITS writer itself: astropy agrees with the expected values.

    Where astropy's conventions differ, its output is mapped first: FITS null logicals read as
    False, TNULL rows are compared only where not null, and strings are cut at the first NUL.
    Left out: SCALED_NOT_UNSIGNED (astropy 8 crashes on TSCAL != 1 with TZERO = 32768: it casts to
    uint16 before scaling) and OLDSTR (astropy ignores the ``rAw`` sub-string convention).
    """
    rng = np.random.default_rng(9)
    columns = [c for c in synthetic_columns(rng, 40) if c.ttype not in ("SCALED_NOT_UNSIGNED", "OLDSTR")]
    src = write_fits(tmp_path / "s.fits", columns, 40)
    with pytest.warns(UserWarning, match="NULL"):
        ref = Table.read(src, hdu=1, mask_invalid=False)
    for c in columns:
        got = np.asarray(ref[c.ttype])
        if c.leaf is None:
            assert got.size == 0, c.ttype
        elif isinstance(c.leaf, list):
            got_str = [s.split("\0")[0].rstrip(" ") for s in np.char.decode(got.ravel(), "ascii")]
            assert got_str == c.leaf, c.ttype
        elif c.tform[-1] in "CM":
            np.testing.assert_array_equal(np.stack([got.real, got.imag], axis=-1).ravel(), c.leaf, c.ttype)
        else:
            keep = np.ones(c.leaf.shape, bool) if c.nulls is None or c.tform[-1] == "L" else ~c.nulls
            np.testing.assert_array_equal(got.ravel()[keep].astype(c.leaf.dtype), c.leaf[keep], c.ttype)


def test_empty_table(tmp_path: Path) -> None:
    columns = synthetic_columns(np.random.default_rng(0), 0)
    src = write_fits(tmp_path / "sweep-empty.fits", columns, 0)
    [result] = convert_sweeps([str(src)], str(tmp_path), progress=False)
    table = pq.read_table(result.output)
    assert (result.rows, table.num_rows, pq.read_metadata(result.output).num_row_groups) == (0, 0, 0)
    assert [f.type for f in table.schema] == [c.arrow_type for c in columns]
    [again] = convert_sweeps([str(src)], str(tmp_path), progress=False)
    assert again.status == "skipped"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sweep-000m010-005m005.fits", "sweep-000m010-005m005.parquet"),
        ("/a/b/sweep-350p025-355p030.FITS", "sweep-350p025-355p030.parquet"),
        ("x.fit", "x.parquet"),
        ("x.fits.fz", "x.fits.fz.parquet"),
        ("fits", "fits.parquet"),
    ],
)
def test_output_name(name: str, expected: str) -> None:
    assert convert.output_name(name) == expected


# --------------------------------------------------------------------------------------------------
# Real DR8 sweeps from the desitarget wheel
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def desitarget_wheel() -> Path:
    wheels = sorted((ROOT / ".cache" / "wheels").glob(WHEEL_GLOB))
    if not wheels:
        pytest.skip(
            f"no {WHEEL_GLOB} in {ROOT / '.cache' / 'wheels'}: run "
            "`pip download --no-deps desitarget==4.4.0 -d .cache/wheels` (the Makefile does)"
        )
    return wheels[-1]


@pytest.fixture
def real_sweeps(desitarget_wheel: Path, tmp_path: Path) -> list[Path]:
    out = tmp_path / "real"
    out.mkdir()
    with zipfile.ZipFile(desitarget_wheel) as zf:
        for name in REAL_SWEEPS:
            (out / name).write_bytes(zf.read(f"desitarget/test/t/{name}"))
    return [out / n for n in REAL_SWEEPS]


#: Arrow leaf type per FITS TFORM letter, for the plain (unscaled) columns of the DR8 sweeps.
_LEAF_BY_CODE = {
    "I": pa.int16(),
    "J": pa.int32(),
    "K": pa.int64(),
    "E": pa.float32(),
    "D": pa.float64(),
    "B": pa.uint8(),
    "L": pa.bool_(),
    "A": pa.string(),
}


def assert_matches_astropy(path: Path, table: pa.Table) -> None:
    """Every column and every value of HDU 1 equals astropy's reading of it."""
    ref = Table.read(path, hdu=1, mask_invalid=False)
    header = fits.getheader(path, 1)
    assert table.column_names == [c.lower() for c in ref.colnames]
    assert table.num_rows == len(ref) == header["NAXIS2"]
    for i, name in enumerate(ref.colnames, start=1):
        col = table[name.lower()]
        code = re.sub(r"^\d*", "", header[f"TFORM{i}"])[0]
        leaf = leaf_of(col)
        want_type = pa.int8() if header.get(f"TZERO{i}") == -128 else _LEAF_BY_CODE[code]
        assert leaf.type == want_type, name
        assert leaf.null_count == 0, name
        ref_values = np.asarray(ref[name])
        if code == "A":
            want: np.ndarray | list[str] = [
                s.rstrip(" ") for s in np.char.decode(ref_values.ravel(), "ascii")
            ]
        else:
            want = ref_values.ravel().astype(leaf.type.to_pandas_dtype())
        assert_leaf_equal(leaf, want, None, f"{path.name}:{name}")


def test_real_sweeps_round_trip(real_sweeps: list[Path], tmp_path: Path) -> None:
    results = convert_sweeps(
        [str(p) for p in real_sweeps], str(tmp_path / "out"), chunk_rows=4, row_group_rows=5
    )
    assert [r.status for r in results] == ["converted"] * 3
    for src, result in zip(real_sweeps, results, strict=True):
        table = pq.read_table(result.output)
        assert table.num_columns == 96
        assert table.schema.field("dchisq").type == pa.list_(pa.float32(), 5)
        assert_matches_astropy(src, table)
    again = convert_sweeps([str(p) for p in real_sweeps], str(tmp_path / "out"), progress=False)
    assert [r.status for r in again] == ["skipped"] * 3


def test_not_a_sweep_file_from_wheel(desitarget_wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(desitarget_wheel) as zf:
        path = tmp_path / "not_a_sweep_file.txt"
        path.write_bytes(zf.read("desitarget/test/t/not_a_sweep_file.txt"))
    with pytest.raises(SweepConvertError, match=r"not_a_sweep_file\.txt: not a FITS file"):
        convert_sweeps([str(path)], str(tmp_path / "out"), progress=False)


# --------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------


def _simple(n: int = 10) -> list[RawColumn]:
    vals = np.arange(n, dtype=np.int32)
    return [RawColumn("OBJID", "J", _be(vals), pa.int32(), vals)]


def _image_hdu(path: Path) -> None:
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3), np.float32))]).writeto(path)


def _ascii_table(path: Path) -> None:
    hdu = fits.TableHDU.from_columns([fits.Column(name="A", format="I5", array=np.arange(3))])
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


def _truncated(path: Path) -> None:
    data = fits_bytes(_simple(5000), 5000)
    path.write_bytes(data[: 2 * FITS_BLOCK + 7000])


def _vla(path: Path) -> None:
    path.write_bytes(fits_bytes(_simple(), 10).replace(b"TFORM1  = 'J       '", b"TFORM1  = 'PJ(3)   '"))


def _wrong_naxis1(path: Path) -> None:
    path.write_bytes(fits_bytes(_simple(), 10, extra_cards={"NAXIS1": 5}))


def _collision(path: Path) -> None:
    vals = np.arange(4, dtype=np.int16)
    cols = [
        RawColumn("Flux", "I", _be(vals), pa.int16(), vals),
        RawColumn("FLUX", "I", _be(vals), pa.int16(), vals),
    ]
    write_fits(path, cols, 4)


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty": (lambda p: p.write_bytes(b""), "zero-length file"),
    "text": (lambda p: p.write_text("RA,DEC\n1,2\n"), "not a FITS file"),
    "gzip": (lambda p: p.write_bytes(gzip.compress(fits_bytes(_simple(), 10))), "gzip-compressed"),
    "primary_only": (lambda p: fits.PrimaryHDU(np.zeros(3)).writeto(p), "no HDU 1"),
    "image": (_image_hdu, "HDU 1 is XTENSION='IMAGE', not a binary table"),
    "ascii_table": (_ascii_table, "XTENSION='TABLE', not a binary table"),
    "truncated": (_truncated, "truncated: the table needs"),
    "vla": (_vla, "variable-length array columns are not supported"),
    "naxis1": (_wrong_naxis1, "NAXIS1=5"),
    "collision": (_collision, "collide once lower-cased: flux"),
    "garbage_header": (lambda p: p.write_bytes(b"SIMPLE  = " + b"\xff" * 5000), "unreadable FITS headers"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_inputs_name_the_file_and_convert_nothing(kind: str, tmp_path: Path) -> None:
    make, message = BAD_FILES[kind]
    good = write_fits(tmp_path / "sweep-good.fits", _simple(), 10)
    bad = tmp_path / f"sweep-{kind}.fits"
    make(bad)
    out = tmp_path / "out"
    with pytest.raises(SweepConvertError, match=re.escape(f"{bad}: ") + ".*" + re.escape(message)):
        convert_sweeps([str(good), str(bad)], str(out), progress=False)
    assert not out.exists() or list(out.iterdir()) == [], (
        "a bad file in the batch must stop it before any work"
    )


def test_missing_input_and_bad_arguments(tmp_path: Path) -> None:
    missing = tmp_path / "nope.fits"
    with pytest.raises(SweepConvertError, match=re.escape(f"{missing}: cannot read the file")):
        convert_sweeps([str(missing)], str(tmp_path), progress=False)
    src = write_fits(tmp_path / "a.fits", _simple(), 10)
    with pytest.raises(ValueError, match="chunk_rows"):
        convert_sweeps([str(src)], str(tmp_path), chunk_rows=0, progress=False)
    (tmp_path / "d").mkdir()
    other = write_fits(tmp_path / "d" / "a.fits", _simple(), 10)
    with pytest.raises(SweepConvertError, match=r"same output: a\.parquet"):
        convert_sweeps([str(src), str(other)], str(tmp_path / "out"), progress=False)
    with pytest.raises(SweepConvertError, match="inputs must be local files"):
        convert_sweeps(["s3://bucket/a.fits"], str(tmp_path / "out"), progress=False)


def test_non_ascii_string_fails_without_output(tmp_path: Path) -> None:
    names = np.array([b"ok", "é".encode("latin-1") + b"x"], "S4")
    src = write_fits(tmp_path / "sweep-latin.fits", [RawColumn("BRICKNAME", "4A", names, pa.string(), [])], 2)
    with pytest.raises(SweepConvertError, match=r"sweep-latin\.fits: row 1, column 'BRICKNAME': non-ASCII"):
        convert_sweeps([str(src)], str(tmp_path / "out"), progress=False)
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Idempotence and crash safety
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def small_sweep(tmp_path: Path) -> tuple[Path, list[RawColumn], int]:
    n = 301
    columns = synthetic_columns(np.random.default_rng(42), n)
    return write_fits(tmp_path / "sweep-100p000-105p005.fits", columns, n), columns, n


def test_second_run_skips_and_overwrite_redoes(
    small_sweep: tuple[Path, list[RawColumn], int], tmp_path: Path
) -> None:
    src, _, n = small_sweep
    out = tmp_path / "out"
    [first] = convert_sweeps([str(src)], str(out), chunk_rows=50, progress=False)
    stamp = os.stat(first.output).st_mtime_ns
    [second] = convert_sweeps([str(src)], str(out), chunk_rows=50, progress=False)
    assert (second.status, second.rows, second.output) == ("skipped", n, first.output)
    assert os.stat(first.output).st_mtime_ns == stamp
    [third] = convert_sweeps([str(src)], str(out), progress=False, overwrite=True)
    assert third.status == "converted"


@pytest.mark.parametrize(
    "damage", ["truncate", "garbage", "empty", "other_source", "old_version", "wrong_rows"]
)
def test_damaged_or_stale_output_is_redone(
    damage: str,
    small_sweep: tuple[Path, list[RawColumn], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, columns, n = small_sweep
    out = tmp_path / "out"
    [first] = convert_sweeps([str(src)], str(out), chunk_rows=100, row_group_rows=100, progress=False)
    target = Path(first.output)
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "garbage":
        target.write_bytes(os.urandom(target.stat().st_size))
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "other_source":
        # Same file name, different content: e.g. a re-released sweep.
        other = tmp_path / "other"
        other.mkdir()
        convert_sweeps(
            [str(write_fits(other / src.name, _simple(7), 7))], str(out), progress=False, overwrite=True
        )
        assert pq.read_metadata(target).num_rows == 7
    elif damage == "old_version":
        monkeypatch.setattr(convert, "CONVERTER_VERSION", "0")
        convert_sweeps([str(src)], str(out), progress=False, overwrite=True)
        monkeypatch.undo()
    elif damage == "wrong_rows":
        # Footer metadata claims the source's rows, but the file holds fewer rows.
        table = pq.read_table(target)
        pq.write_table(table.slice(0, n - 1).replace_schema_metadata(table.schema.metadata), target)
    ok, reason = convert.completeness(str(target), convert.read_layout(str(src)))
    assert not ok, reason
    [again] = convert_sweeps([str(src)], str(out), progress=False)
    assert again.status == "converted"
    assert_output_matches(pq.read_table(target), columns, n)


def test_failure_midway_leaves_no_complete_output(
    small_sweep: tuple[Path, list[RawColumn], int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, _, _ = small_sweep
    out = tmp_path / "out"
    real = convert._record_batch
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> pa.RecordBatch:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(convert, "_record_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        convert_sweeps([str(src)], str(out), chunk_rows=50, row_group_rows=50, progress=False)
    assert calls["n"] == 4
    assert list(out.iterdir()) == []

    # An earlier complete output survives a failed overwrite untouched.
    monkeypatch.setattr(convert, "_record_batch", real)
    [done] = convert_sweeps([str(src)], str(out), progress=False)
    before = Path(done.output).read_bytes()
    calls["n"] = 0
    monkeypatch.setattr(convert, "_record_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        convert_sweeps([str(src)], str(out), chunk_rows=50, progress=False, overwrite=True)
    assert Path(done.output).read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [Path(done.output).name]


def test_row_count_mismatch_is_refused(
    small_sweep: tuple[Path, list[RawColumn], int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that loses rows (here: stops after the first chunk) never publishes an output."""
    src, _, n = small_sweep
    real = convert.iter_record_batches

    def first_chunk_only(layout: convert.FitsTableLayout, chunk_rows: int) -> Any:
        gen = real(layout, chunk_rows)
        yield next(gen)
        gen.close()

    monkeypatch.setattr(convert, "iter_record_batches", first_chunk_only)
    with pytest.raises(SweepConvertError, match=re.escape(f"{src}: wrote 100 rows but NAXIS2 is {n}")):
        convert_sweeps([str(src)], str(tmp_path / "out"), chunk_rows=100, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_output_failing_verification_is_deleted(
    small_sweep: tuple[Path, list[RawColumn], int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the published file's footer disagrees with the source, it is removed and the error names both."""
    src, _, _ = small_sweep

    def wrong_footer(layout: convert.FitsTableLayout, dest: str, *args: Any) -> int:
        pq.write_table(pa.table({"x": pa.array(range(layout.n_rows))}), dest)
        return layout.n_rows

    monkeypatch.setattr(convert, "_write_parquet", wrong_footer)
    with pytest.raises(SweepConvertError, match=r"failed verification after writing: metadata stronglens"):
        convert_sweeps([str(src)], str(tmp_path / "out"), progress=False)
    assert list((tmp_path / "out").iterdir()) == []


_KILL_SCRIPT = """
import os, signal, sys
from stronglens import convert
real, calls = convert._record_batch, [0]
def dying(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
convert._record_batch = dying
convert.convert_sweeps([sys.argv[1]], sys.argv[2], chunk_rows=50, row_group_rows=50, progress=False)
"""


def test_sigkill_midway_then_resume(small_sweep: tuple[Path, list[RawColumn], int], tmp_path: Path) -> None:
    """A real SIGKILL after row groups were flushed leaves only a hidden .part file; a rerun fixes it."""
    src, columns, n = small_sweep
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(src), str(out)], capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    leftovers = list(out.iterdir())
    assert [p.name for p in leftovers] == [f".{convert.output_name(str(src))}.part"]
    assert leftovers[0].stat().st_size > 0
    assert storage.list_files(str(out), ".parquet") == []
    [result] = convert_sweeps([str(src)], str(out), progress=False)
    assert result.status == "converted"
    assert [p.name for p in out.iterdir()] == [Path(result.output).name]
    assert_output_matches(pq.read_table(result.output), columns, n)


# --------------------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------------------


def test_convert_to_s3_and_read_with_duckdb(
    s3_bucket: str,
    s3_client: Any,
    real_sweeps: list[Path],
    small_sweep: tuple[Path, list[RawColumn], int],
    tmp_path: Path,
) -> None:
    src, _, n = small_sweep
    inputs = [str(p) for p in real_sweeps]
    prefix = f"s3://{s3_bucket}/sweeps/dr8"
    staging = tmp_path / "staging"
    results = convert_sweeps(inputs, prefix, chunk_rows=4, progress=False, staging_dir=str(staging))
    assert [r.output for r in results] == [f"{prefix}/{convert.output_name(p)}" for p in inputs]
    assert storage.list_files(prefix, ".parquet") == [r.output for r in results]
    assert list(staging.iterdir()) == []

    con = storage.connect_duckdb()
    for path, result in zip(real_sweeps, results, strict=True):
        assert_matches_astropy(
            path, con.execute(f"SELECT * FROM read_parquet('{result.output}')").fetch_arrow_table()
        )
    # Parquet has no fixed-size list type: DuckDB sees FLOAT[] (pyarrow restores list<float>[5]).
    total = con.execute(
        f"SELECT count(*), any_value(typeof(dchisq)), min(len(dchisq)), max(len(dchisq)) "
        f"FROM read_parquet('{prefix}/*.parquet')"
    ).fetchone()
    assert total == (18, "FLOAT[]", 5, 5)

    [synthetic] = convert_sweeps([str(src)], f"s3://{s3_bucket}/sweeps/synthetic", progress=False)
    local = convert_sweeps([str(src)], str(tmp_path / "local"), progress=False)[0].output
    diff = con.execute(
        f"""SELECT (SELECT count(*) FROM (FROM read_parquet('{synthetic.output}')
                                        EXCEPT ALL FROM read_parquet('{local}'))),
                   (SELECT count(*) FROM (FROM read_parquet('{local}')
                                        EXCEPT ALL FROM read_parquet('{synthetic.output}'))),
                   (SELECT count(*) FROM read_parquet('{synthetic.output}'))"""
    ).fetchone()
    assert diff == (0, 0, n)

    again = convert_sweeps(inputs, prefix, progress=False)
    assert [r.status for r in again] == ["skipped"] * 3
    key = results[0].output.removeprefix(f"s3://{s3_bucket}/")
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"PAR1 not really")
    again = convert_sweeps(inputs, prefix, progress=False)
    assert [r.status for r in again] == ["converted", "skipped", "skipped"]
    redone = con.execute(f"SELECT * FROM read_parquet('{again[0].output}')").fetch_arrow_table()
    assert_matches_astropy(real_sweeps[0], redone)


def test_s3_failure_leaves_no_object(
    s3_bucket: str,
    s3_client: Any,
    small_sweep: tuple[Path, list[RawColumn], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, _, _ = small_sweep

    def failing(*args: Any, **kwargs: Any) -> pa.RecordBatch:
        raise OSError("disk vanished")

    monkeypatch.setattr(convert, "_record_batch", failing)
    with pytest.raises(OSError, match="disk vanished"):
        convert_sweeps([str(src)], f"s3://{s3_bucket}/out", progress=False, staging_dir=str(tmp_path / "st"))
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert list((tmp_path / "st").iterdir()) == []

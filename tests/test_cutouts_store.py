"""The NPZ cutout store: format round trip (local and S3), validation, atomicity and resume planning."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from stronglens.cutouts import store
from stronglens.cutouts.store import CutoutFileError, CutoutMeta

META_KEYS = (
    "meta_galaxy_id",
    "meta_ra",
    "meta_dec",
    "meta_type",
    "meta_nobs_z",
    "meta_psfsize_z",
    "meta_flux_r",
    "meta_cutout_url",
    "meta_download_timestamp",
)


def random_cutout(rng: np.random.Generator) -> np.ndarray:
    """Pixels with the values a real cutout can hold: noise, bright cores, NaN, +-inf, denormals."""
    image = (rng.normal(0, 1, (101, 101, 3)) * rng.choice([1e-3, 1.0, 1e4])).astype(np.float32)
    flat = image.reshape(-1)
    idx = rng.integers(0, flat.size, 30)
    flat[idx[:10]] = np.nan
    flat[idx[10:15]] = np.inf
    flat[idx[15:20]] = -np.inf
    flat[idx[20:]] = np.float32(1e-42)
    return image


def random_meta(rng: np.random.Generator, i: int) -> CutoutMeta:
    gid: str | int = int(rng.integers(0, 2**62)) if i % 3 == 0 else f"10000_{i}_{rng.integers(1e6)}-é"
    return CutoutMeta(
        galaxy_id=gid,
        ra=float(rng.uniform(0, 360)),
        dec=float(rng.uniform(-90, 90)),
        type=str(rng.choice(["SER", "DEV", "REX", "EXP", "PSF"])),
        nobs_z=int(rng.integers(0, 30)),
        psfsize_z=float(rng.uniform(0.6, 2.5)),
        flux_r=float(rng.normal(10, 5)),
        cutout_url=f"https://www.legacysurvey.org/viewer/fits-cutout?ra={i}&dec=1&layer=ls-dr10-south",
        download_timestamp="2025-05-01T12:00:00.123+00:00",
    )


def read_npz_independently(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_round_trip_matches_the_established_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(12):
        cutout, meta = random_cutout(rng), random_meta(rng, i)
        uri = store.cutout_path(str(tmp_path), params_key="k0", sample_id=meta.galaxy_id)
        written = store.write_cutout(uri, cutout, meta)
        raw = Path(uri).read_bytes()
        assert written.path == uri and written.bytes == len(raw)
        assert written.sha256 == hashlib.sha256(raw).hexdigest()
        entries = read_npz_independently(raw)
        assert sorted(entries) == sorted(("cutout", *META_KEYS))
        assert entries["cutout"].dtype == np.float32 and entries["cutout"].shape == (101, 101, 3)
        np.testing.assert_array_equal(entries["cutout"], cutout)
        assert entries["meta_ra"].dtype == np.float64 and entries["meta_nobs_z"].dtype == np.int64
        assert entries["meta_galaxy_id"].item() == meta.galaxy_id
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:  # np.savez: stored, not deflated (speed)
            assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}
        back, back_meta = store.read_cutout(uri)
        np.testing.assert_array_equal(back, cutout)
        assert back_meta == meta
    names = os.listdir(tmp_path / "k0")
    assert len(names) == 12 and all(n.endswith(".npz") and not n.startswith(".") for n in names)


def test_round_trip_on_s3(s3_bucket: str, s3_client: Any) -> None:
    rng = np.random.default_rng(1)
    cutout, meta = random_cutout(rng), random_meta(rng, 1)
    uri = store.cutout_path(f"s3://{s3_bucket}/cutouts/", params_key="k0", sample_id="g1")
    assert uri == f"s3://{s3_bucket}/cutouts/k0/g1.npz"
    written = store.write_cutout(uri, cutout, meta)
    body = s3_client.get_object(Bucket=s3_bucket, Key="cutouts/k0/g1.npz")["Body"].read()
    assert written.sha256 == hashlib.sha256(body).hexdigest() and written.bytes == len(body)
    back, back_meta = store.read_cutout(uri)
    np.testing.assert_array_equal(back, cutout)
    assert back_meta == meta


def test_paths_refuse_names_that_escape_their_folder(tmp_path: Path) -> None:
    assert store.cutout_path("/r", "{label}/{galaxy_id}.npz", label="N1", galaxy_id=42) == "/r/N1/42.npz"
    for bad in ("", ".", "..", "a/b", "..\\x", "nul\x00", "tab\tname"):
        with pytest.raises(ValueError, match="plain file name"):
            store.cutout_path(str(tmp_path), params_key="k0", sample_id=bad)
    with pytest.raises(ValueError, match="needs field 'params_key'"):
        store.cutout_path(str(tmp_path), sample_id="x")


def test_writer_refuses_arrays_outside_the_format(tmp_path: Path) -> None:
    meta = random_meta(np.random.default_rng(2), 2)
    for bad in (
        np.zeros((101, 101, 3)),
        np.zeros((3, 101, 101), np.float32),
        np.zeros((101, 101), np.float32),
    ):
        with pytest.raises(CutoutFileError, match=r"shape|dtype"):
            store.write_cutout(str(tmp_path / "x.npz"), bad, meta)
    assert not any(tmp_path.iterdir())


def npz_bytes(**entries: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **entries)
    return buffer.getvalue()


def good_entries() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    return {"cutout": random_cutout(rng), **random_meta(rng, 4).to_arrays()}


def test_reader_rejects_every_deviation_with_the_file_named(tmp_path: Path) -> None:
    good = npz_bytes(**good_entries())
    cases: dict[str, bytes] = {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "not_zip": b"\x93NUMPY not a zip",
        "float64": npz_bytes(**{**good_entries(), "cutout": good_entries()["cutout"].astype(np.float64)}),
        "chw": npz_bytes(**{**good_entries(), "cutout": np.zeros((3, 101, 101), np.float32)}),
        "missing_key": npz_bytes(**{k: v for k, v in good_entries().items() if k != "meta_flux_r"}),
        "extra_key": npz_bytes(**good_entries(), meta_extra=np.asarray(1)),
        "vector_meta": npz_bytes(**{**good_entries(), "meta_ra": np.array([1.0, 2.0])}),
        "string_ra": npz_bytes(**{**good_entries(), "meta_ra": np.asarray("1.0")}),
        "bad_timestamp": npz_bytes(**{**good_entries(), "meta_download_timestamp": np.asarray("yesterday")}),
        "pickled": npz_bytes(**{**good_entries(), "meta_type": np.array({"a": 1}, dtype=object)}),
    }
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF  # deflate stream corrupted: the zip CRC check must catch it
    cases["bitflip"] = bytes(flipped)
    for name, data in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        with pytest.raises(CutoutFileError, match=f"{name}.npz"):
            store.read_cutout(str(path))
    with pytest.raises(CutoutFileError, match="no such cutout file"):
        store.read_cutout(str(tmp_path / "absent.npz"))


def test_plan_refetch_finds_missing_invalid_and_changed_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 40
    ids = [f"s{i}" for i in range(n)]
    paths = [store.cutout_path(str(tmp_path), params_key="k0", sample_id=g) for g in ids]
    written = {}
    for i in range(0, n, 2):  # even: written, odd: never written
        written[paths[i]] = store.write_cutout(paths[i], random_cutout(rng), random_meta(rng, i)).sha256
    Path(paths[2]).write_bytes(b"")  # killed before any byte
    Path(paths[4]).write_bytes(Path(paths[4]).read_bytes()[:100])  # corrupted later
    Path(paths[5]).parent.mkdir(parents=True, exist_ok=True)
    Path(paths[5]).parent.joinpath(f".{Path(paths[5]).name}.part").write_bytes(b"partial")  # killed mid-write
    store.write_cutout(paths[6], random_cutout(rng), random_meta(rng, 6))  # valid, but not what was recorded
    expected_exists = {ids[i]: "missing" for i in range(1, n, 2)} | {ids[2]: "empty file"}
    plan = store.plan_refetch(ids, paths, check="exists")
    assert (
        dict(zip(plan["sample_id"].to_pylist(), plan["reason"].to_pylist(), strict=True)) == expected_exists
    )
    assert plan["sample_id"].to_pylist() == [s for s in ids if s in expected_exists]  # input order
    plan = store.plan_refetch(pa.array(ids), pa.array(paths), check="read", recorded_sha256=written)
    got = dict(zip(plan["sample_id"].to_pylist(), plan["reason"].to_pylist(), strict=True))
    assert got.pop(ids[6]) == "sha256 differs from the recorded one"
    reason4 = got.pop(ids[4])
    assert reason4.startswith("invalid:") and paths[4] in reason4
    assert got == expected_exists
    missing_root = store.plan_refetch(["a"], [str(tmp_path / "nowhere" / "a.npz")])
    assert missing_root["reason"].to_pylist() == ["missing"]
    with pytest.raises(ValueError, match="mix s3"):
        store.plan_refetch(["a", "b"], ["s3://b/a.npz", str(tmp_path / "b.npz")])


def test_plan_refetch_on_s3(s3_bucket: str) -> None:
    rng = np.random.default_rng(5)
    root = f"s3://{s3_bucket}/cut"
    ids = [f"g{i}" for i in range(6)]
    paths = [store.cutout_path(root, params_key="k0", sample_id=g) for g in ids]
    for p in paths[:3]:
        store.write_cutout(p, random_cutout(rng), random_meta(rng, 0))
    plan = store.plan_refetch(ids, paths)
    assert plan["sample_id"].to_pylist() == ids[3:] and set(plan["reason"].to_pylist()) == {"missing"}


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from stronglens.cutouts import store
    root, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    meta = store.CutoutMeta("x", 1.0, 2.0, "SER", 3, 1.1, 5.0, "u", "2025-01-01T00:00:00+00:00")
    for i in range(n):
        store.write_cutout(store.cutout_path(root, "{sample_id}.npz", sample_id=f"c{i:05d}"),
                           rng.normal(size=(101, 101, 3)).astype(np.float32), meta)
        print(i, flush=True)
    """
)


def test_a_killed_writer_leaves_only_complete_files(tmp_path: Path) -> None:
    """SIGKILL a process writing cutouts: every file under a final name is complete and valid, and
    the resume plan asks exactly for the ones not yet published."""
    n = 2000
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(n)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for _ in range(30):  # let it publish some files, then kill it mid-stream
        proc.stdout.readline()
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    ids = [f"c{i:05d}" for i in range(n)]
    paths = [str(tmp_path / f"{s}.npz") for s in ids]
    plan = store.plan_refetch(ids, paths, check="read")
    assert set(plan["reason"].to_pylist()) == {"missing"}
    done = sorted(set(ids) - set(plan["sample_id"].to_pylist()))
    assert 30 <= len(done) < n
    assert done == ids[: len(done)]  # written in order: a prefix, nothing lost, no gap


def test_plan_refetch_resolves_relative_paths_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(6)
    monkeypatch.chdir(tmp_path)
    rel = [store.cutout_path("cutouts", params_key="k0", sample_id=g) for g in ("a", "b")]
    store.write_cutout(rel[0], random_cutout(rng), random_meta(rng, 0))
    plan = store.plan_refetch(["a", "b"], rel)
    assert plan.to_pylist() == [{"sample_id": "b", "path": rel[1], "reason": "missing"}]

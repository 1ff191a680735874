"""The SQL hashes (macros/hashing.sql) equal their Python references bit for bit."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from stronglens.hashing import P31, assign_split, sample_hash, split_unit_interval
from tests.sqlmacros import load_macros, render

MACROS = load_macros("hashing.sql")


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def _edge_keys() -> np.ndarray:
    rng = np.random.default_rng(7)
    galaxy_ids = (
        rng.choice([10000, 10002], 200_000).astype(np.int64) * 10**12
        + rng.integers(0, 10**6, 200_000) * 10**6
        + rng.integers(0, 10**6, 200_000)
    )
    edges = np.array(
        [0, 1, P31 - 1, P31, P31 + 1, 2 * P31, 65535, 65536, 32767 * 10**12 + 999_999_999_999],
        dtype=np.int64,
    )
    return np.concatenate([galaxy_ids, edges, np.arange(10000, dtype=np.int64)])


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31 - 2])
def test_sample_hash_sql_equals_python(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    keys = _edge_keys()
    con.register("k", pa.table({"key": keys}))
    sql = f"select {render(MACROS, 'sample_hash', 'key', seed)} as h from k"
    got = con.execute(sql).fetchnumpy()["h"]
    np.testing.assert_array_equal(got, sample_hash(keys, seed))
    assert got.min() >= 0 and got.max() < P31


def test_sample_hash_is_uniform_and_decorrelated() -> None:
    # Consecutive object ids in one brick must not map to ordered or clustered values.
    keys = 10000 * 10**12 + 123 * 10**6 + np.arange(200_000, dtype=np.int64)
    u = sample_hash(keys, 42) / P31
    counts, _ = np.histogram(u, bins=20, range=(0, 1))
    expected = len(u) / 20
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 45  # chi-square, 19 dof: p ~ 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
    assert abs(np.corrcoef(u, np.arange(len(u)))[0, 1]) < 0.01
    assert not np.array_equal(sample_hash(keys, 1), sample_hash(keys, 2))


def test_sample_hash_rejects_negative_input() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        sample_hash(np.array([-1]), 3)


def test_sha256_unit_interval_sql_equals_python(con: duckdb.DuckDBPyConnection) -> None:
    pixels = np.concatenate([np.arange(5000), [2**40, 12 * 4**29 - 1]]).astype(np.int64)
    con.register("p", pa.table({"healpix": pixels}))
    expr = render(MACROS, "sha256_unit_interval", "cast(healpix as varchar) || '_42'")
    got = con.execute(f"select {expr} as h from p").fetchnumpy()["h"]
    np.testing.assert_array_equal(got, [split_unit_interval(int(p), 42) for p in pixels])


def test_assign_split_walks_sorted_allocations() -> None:
    alloc = {"val": 0.15, "train": 0.70, "test": 0.15}
    splits = [assign_split(p, 42, alloc) for p in range(20000)]
    shares = {s: splits.count(s) / len(splits) for s in alloc}
    assert all(abs(shares[s] - alloc[s]) < 0.015 for s in alloc)
    # sorted by name: test [0, .15), train [.15, .85), val [.85, 1)
    for p in range(200):
        h = split_unit_interval(p, 42)
        want = "test" if h < 0.15 else "train" if h < 0.85 else "val"
        assert assign_split(p, 42, alloc) == want

"""Vars are validated before any work, against vars_schema.yml, with every problem in one error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stronglens import varschema
from stronglens.varschema import VarsError, parse_cli_vars, resolve_vars
from tests.pipeline import ROOT


def test_schema_lists_every_var_and_every_default_passes() -> None:
    schema = varschema.load_schema(ROOT)
    defaults = varschema.project_defaults(ROOT)
    # `sweeps` is deliberately unset in dbt_project.yml (it defaults to $STRONGLENS_SWEEPS).
    assert set(schema) - {"sweeps"} == set(defaults), "vars_schema.yml and dbt_project.yml disagree"
    assert varschema.validate(defaults, schema) == []


def test_plain_dbt_recorder_lists_the_schema_vars() -> None:
    """A plain `dbt build` records the vars of macros/build_log.sql; it must know every var."""
    macro = (ROOT / "macros" / "build_log.sql").read_text()
    body = macro.split("macro recorded_var_names", 1)[1].split("endmacro", 1)[0]
    assert set(re.findall(r"'([a-z0-9_]+)'", body)) == set(varschema.load_schema(ROOT))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"neg_pos_ratio": -5}, "neg_pos_ratio: value -5 is below the minimum 1"),
        ({"split_allocations": {"train": 0.9, "val": 0.25, "test": 0.25}}, "must sum to 1.0, got 1.4"),
        ({"split_allocations": {"train": 0.7, "valid": 0.3}}, "keys must be exactly"),
        ({"neg_pos_raito": 50}, "neg_pos_raito: unknown var; did you mean 'neg_pos_ratio'?"),
        ({"n2_share_band": [0.3, 0.1]}, "low > high"),
        ({"type_bins": ["SER", "SRE"]}, "did you mean 'SER'?"),
        ({"fallback_type_bin": "PSF"}, "must be one of type_bins"),
        ({"nobs_z_bin_edges": [3, 8, 5]}, "increase strictly"),
        ({"healpix_nside": 60}, "is not one of"),
        ({"match_radius_arcsec": "1"}, "is not a number"),
        ({"cutout_max_positives": None}, None),
        ({"n2_fraction": float("nan")}, "is not a number"),
    ],
)
def test_each_rule(overrides: dict, expected: str | None) -> None:
    if expected is None:
        resolve_vars(overrides, ROOT)
        return
    with pytest.raises(VarsError) as err:
        resolve_vars(overrides, ROOT)
    assert expected in str(err.value)


def test_one_error_lists_every_problem() -> None:
    with pytest.raises(VarsError) as err:
        resolve_vars({"neg_pos_ratio": -5, "neg_pos_raito": 1, "n2_fraction": 2}, ROOT)
    assert len(err.value.problems) == 3


def test_cli_vars_parsing() -> None:
    assert parse_cli_vars(["--select", "x", "--vars", "{neg_pos_ratio: 5}"]) == {"neg_pos_ratio": 5}
    assert parse_cli_vars(['--vars={"a": 1}', "--vars", "b: 2"]) == {"a": 1, "b": 2}
    with pytest.raises(VarsError, match="must be a mapping"):
        parse_cli_vars(["--vars", "[1, 2]"])


def test_build_refuses_bad_vars_before_any_work(tmp_path: Path) -> None:
    """`stronglens build --vars` with bad values exits 2 naming every problem, and creates nothing."""
    home = tmp_path / "wh"
    env = dict(os.environ, STRONGLENS_HOME=str(home))
    result = subprocess.run(
        [sys.executable, "-m", "stronglens.cli", "build", "--vars", "{neg_pos_raito: 50, neg_pos_ratio: -5}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "did you mean 'neg_pos_ratio'" in result.stderr and "below the minimum" in result.stderr
    assert not home.exists()

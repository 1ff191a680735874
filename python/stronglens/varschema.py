"""Validate a build's dbt vars before any work: every var known, typed, in range, consistent.

Why before dbt: a bad value (``neg_pos_ratio: -5``, allocations summing to 1.4) used to build
"successfully" into an empty or lopsided training set, and a misspelt name (``neg_pos_raito``) was
silently ignored.  :func:`resolve_vars` merges the defaults of ``dbt_project.yml`` (the only place
defaults live) with the ``--vars`` of one build, checks the result against ``vars_schema.yml`` (the
only place the rules live; see its header for the keys) and raises one :class:`VarsError` listing
every problem, each with what to do.  The resolved vars are what ``build_runs.vars_json`` records.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stronglens import paths

SCHEMA_FILE = "vars_schema.yml"
TYPES = ("bool", "int", "number", "string", "list", "map", "band")
ROLES = ("target", "input", "band")
_ENTRY_KEYS = {
    "type",
    "nullable",
    "min",
    "max",
    "exclusive_min",
    "exclusive_max",
    "allowed",
    "items",
    "min_items",
    "unique",
    "increasing",
    "keys",
    "sum",
    "member_of",
    "role",
}
SUM_TOLERANCE = 1e-9
#: The CLI tells dbt's build recorder (macros/build_log.sql) which vars it validated, as a JSON list.
VAR_NAMES_ENV = "STRONGLENS_VAR_NAMES"


class VarsError(ValueError):
    """One or more vars are unusable; the message lists every problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s) with the build's vars (nothing was built):\n{listing}\n"
            f"Rules: {SCHEMA_FILE}; defaults and their meaning: dbt_project.yml (vars)."
        )


@dataclass(frozen=True)
class VarSpec:
    """One entry of ``vars_schema.yml``."""

    name: str
    rules: Mapping[str, Any]

    @property
    def role(self) -> str:
        return str(self.rules.get("role", "target"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


_SCALAR_CHECKS = {
    "bool": lambda v: isinstance(v, bool),
    "int": _is_int,
    "number": _is_number,
    "string": lambda v: isinstance(v, str),
}
#: Element kinds of a list or map: the scalars, or a nested mapping (e.g. the N2 presets, whose
#: inner keys the models' own macros validate).
_ELEMENT_CHECKS = {**_SCALAR_CHECKS, "map": lambda v: isinstance(v, Mapping)}


def load_schema(root: Path | None = None) -> dict[str, VarSpec]:
    """The var schema, checked for well-formedness (a broken entry is a bug in the schema file)."""
    path = (root or paths.project_root()) / SCHEMA_FILE
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a mapping of var names to rules")
    specs = {}
    for name, rules in raw.items():
        if not isinstance(rules, Mapping) or rules.get("type") not in TYPES:
            raise ValueError(f"{path}: {name}: needs `type`, one of {', '.join(TYPES)}")
        unknown = set(rules) - _ENTRY_KEYS
        if unknown or rules.get("role", "target") not in ROLES:
            raise ValueError(f"{path}: {name}: unknown rule(s) {sorted(unknown)} or role (one of {ROLES})")
        specs[str(name)] = VarSpec(str(name), dict(rules))
    return specs


def project_defaults(root: Path | None = None) -> dict[str, Any]:
    """The vars of ``dbt_project.yml``: every var's default."""
    project = yaml.safe_load(((root or paths.project_root()) / "dbt_project.yml").read_text())
    return dict(project.get("vars") or {})


def _bounds(name: str, value: float, rules: Mapping[str, Any], what: str) -> list[str]:
    problems = []
    if "min" in rules and value < rules["min"]:
        problems.append(f"{name}: {what} {value} is below the minimum {rules['min']}")
    if "max" in rules and value > rules["max"]:
        problems.append(f"{name}: {what} {value} is above the maximum {rules['max']}")
    if "exclusive_min" in rules and value <= rules["exclusive_min"]:
        problems.append(f"{name}: {what} {value} must be greater than {rules['exclusive_min']}")
    if "exclusive_max" in rules and value >= rules["exclusive_max"]:
        problems.append(f"{name}: {what} {value} must be less than {rules['exclusive_max']}")
    return problems


def _element(name: str, value: Any, kind: str, rules: Mapping[str, Any], what: str) -> list[str]:
    """Type, allowed values and bounds of one scalar (a var, or an element of a list/map)."""
    if not _ELEMENT_CHECKS[kind](value):
        return [f"{name}: {what} {value!r} is not a {kind}"]
    problems = []
    if "allowed" in rules and value not in rules["allowed"]:
        hint = difflib.get_close_matches(str(value), [str(a) for a in rules["allowed"]], n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        problems.append(f"{name}: {what} {value!r} is not one of {rules['allowed']}{suffix}")
    if kind in ("int", "number"):
        problems += _bounds(name, value, rules, what)
    return problems


def check_value(spec: VarSpec, value: Any, resolved: Mapping[str, Any]) -> list[str]:
    """Every problem of one var's value (empty when it is fine)."""
    name, rules, kind = spec.name, spec.rules, spec.rules["type"]
    if value is None:
        return [] if rules.get("nullable") else [f"{name}: must be set (null is not allowed)"]
    if kind in _SCALAR_CHECKS:
        problems = _element(name, value, kind, rules, "value")
    elif kind == "band":
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            return [f"{name}: {value!r} is not a band [low, high] of two numbers"]
        problems = [p for v in value for p in _bounds(name, v, rules, "bound")]
        if value[0] > value[1]:
            problems.append(f"{name}: the band {value} has low > high")
    elif kind == "list":
        if not isinstance(value, list):
            return [f"{name}: {value!r} is not a list"]
        item_kind = rules.get("items", "string")
        problems = [
            p for i, v in enumerate(value) for p in _element(name, v, item_kind, rules, f"item {i + 1}")
        ]
        if len(value) < rules.get("min_items", 0):
            problems.append(f"{name}: needs at least {rules['min_items']} item(s), got {len(value)}")
        if rules.get("unique") and len({json.dumps(v) for v in value}) != len(value):
            problems.append(f"{name}: items must be distinct, got {value}")
        if rules.get("increasing") and not problems and any(b <= a for a, b in itertools.pairwise(value)):
            problems.append(f"{name}: items must increase strictly, got {value}")
    else:  # map
        if not isinstance(value, Mapping):
            return [f"{name}: {value!r} is not a mapping"]
        item_kind = rules.get("items", "number")
        problems = [
            p for k, v in value.items() for p in _element(name, v, item_kind, rules, f"value of {k!r}")
        ]
        if "keys" in rules and sorted(value) != sorted(rules["keys"]):
            problems.append(f"{name}: keys must be exactly {sorted(rules['keys'])}, got {sorted(value)}")
        if len(value) < rules.get("min_items", 0):
            problems.append(f"{name}: needs at least {rules['min_items']} entries, got {len(value)}")
        value = list(value.values())
    if "sum" in rules and not problems and abs(sum(value) - rules["sum"]) > SUM_TOLERANCE:
        problems.append(f"{name}: must sum to {rules['sum']}, got {sum(value):g}")
    member_of = rules.get("member_of")
    members = resolved.get(member_of) if member_of else None
    if isinstance(members, list) and not problems and value not in members:
        problems.append(f"{name}: {value!r} must be one of {member_of} = {resolved[member_of]}")
    return problems


def validate(values: Mapping[str, Any], schema: Mapping[str, VarSpec]) -> list[str]:
    """Every problem of a complete set of vars: unknown names (with a did-you-mean), then values."""
    problems = []
    for name in values:
        if name not in schema:
            hint = difflib.get_close_matches(name, list(schema), n=1)
            suffix = f"; did you mean {hint[0]!r}?" if hint else ""
            problems.append(f"{name}: unknown var{suffix}")
    for name, spec in schema.items():
        if name in values:
            problems += check_value(spec, values[name], values)
    return problems


def parse_cli_vars(dbt_args: Sequence[str]) -> dict[str, Any]:
    """The ``--vars`` of a dbt command line (YAML or JSON, ``--vars X`` or ``--vars=X``), merged."""
    found: dict[str, Any] = {}
    args = list(dbt_args)
    for i, arg in enumerate(args):
        text = None
        if arg == "--vars" and i + 1 < len(args):
            text = args[i + 1]
        elif arg.startswith("--vars="):
            text = arg.split("=", 1)[1]
        if text is None:
            continue
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise VarsError([f"--vars {text!r} is not YAML/JSON: {exc}"]) from exc
        if not isinstance(parsed, Mapping):
            raise VarsError([f"--vars {text!r} must be a mapping such as '{{neg_pos_ratio: 50}}'"])
        found.update(parsed)
    return found


def resolve_vars(overrides: Mapping[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Defaults merged with ``overrides``, validated; raises :class:`VarsError` listing every problem."""
    schema = load_schema(root)
    # Every schema var gets a value (null when neither a default nor --vars sets it, e.g. `sweeps`,
    # whose location dbt resolves from the environment), so build_runs records every var.
    resolved = {**dict.fromkeys(schema), **project_defaults(root), **overrides}
    problems = validate(resolved, schema)
    if problems:
        raise VarsError(problems)
    return resolved


def custom_targets(build_vars: Mapping[str, Any], root: Path | None = None) -> dict[str, Any]:
    """The target and band vars of a build that differ from the project defaults (inputs excluded):
    what makes a build "custom" for the quality gate."""
    schema = load_schema(root)
    defaults = project_defaults(root)
    return {
        name: value
        for name, value in build_vars.items()
        if name in schema and schema[name].role != "input" and value != defaults.get(name)
    }

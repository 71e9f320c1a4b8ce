"""The contract of a reproduction's ``results.json``, checked: ``contrastkit validate RESULTS_JSON [--min-seeds N]``.

::

    {"experiment": str, "command": str, "seconds": number, "alpha": number in (0, 0.5),
     "rows": [{"arm": str, "setting": {...}, "seed": int, "metrics": {name: finite number}}],
     "gates": [{"name": str, "description": str, "passed": bool, "evidence": str}],
     "claims": [{"claim": str, "verdict": one of VERDICTS, "evidence": str, "primary": bool, "metric": str,
                 "better": str, "worse": str, "margin": number, "gates": [gate names], "failed_gates": [names],
                 "n": int, "mean_difference", "std_difference", "p", "p_reverse", "p_holm", "p_reverse_holm",
                 "mde": number or null}]}

Every arm (with its setting) needs at least ``min_seeds`` seeds, the claims must not be empty (an unfinished run is
no reproduction), and ``report.md`` must stand beside the file. Each verdict must follow from its numbers by the
rule of :mod:`contrastkit.reproduce.claims`: "untestable" needs a failed gate (or an arm without rows, n = 0),
"reproduced" a Holm-corrected p below alpha with every gate passed, "not reproduced" a corrected reverse p below
alpha, and a claim's gates must be gates of the run. :func:`results_problems` returns one line per problem (empty
when the contract holds).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from contrastkit.reproduce.claims import VERDICTS

__all__ = ["results_problems"]

_TOP_LEVEL: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("experiment", str, "a string"),
    ("command", str, "a string"),
    ("seconds", (int, float), "a number"),
    ("alpha", (int, float), "a number"),
    ("rows", list, "a list"),
    ("gates", list, "a list"),
    ("claims", list, "a list"),
)
_CLAIM_FIELDS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("claim", str, "a non-empty string"),
    ("evidence", str, "a non-empty string"),
    ("primary", bool, "true or false"),
    ("metric", str, "a string"),
    ("better", str, "a string"),
    ("worse", str, "a string"),
    ("margin", (int, float), "a number"),
    ("gates", list, "a list of gate names"),
    ("failed_gates", list, "a list of gate names"),
    ("n", int, "an int"),
)
_OPTIONAL_NUMBERS = ("mean_difference", "std_difference", "p", "p_reverse", "p_holm", "p_reverse_holm", "mde")


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance where a bool is no number (True is an int in Python) but is a bool."""
    if kind is bool:
        return isinstance(value, bool)
    return not isinstance(value, bool) and isinstance(value, kind)


def _claim_problems(i: int, claim: Any, gates: dict[str, bool], alpha: float) -> list[str]:
    """Shape of one claim, and whether its verdict follows from its numbers and gates."""
    if not isinstance(claim, dict) or claim.get("verdict") not in VERDICTS:
        return [f"claims[{i}]: verdict must be one of {list(VERDICTS)}"]
    out = [f"claims[{i}]: {key!r} missing or not {what}" for key, kind, what in _CLAIM_FIELDS
           if not _is(claim.get(key), kind) or (key in ("claim", "evidence") and not claim[key])]  # fmt: skip
    for key in _OPTIONAL_NUMBERS:
        value = claim.get(key)
        if value is not None and (not _is(value, (int, float)) or not math.isfinite(value)):
            out.append(f"claims[{i}]: {key!r} must be a finite number or null")
    if out:
        return out
    unknown = [g for g in claim["gates"] + claim["failed_gates"] if g not in gates]
    if unknown:
        return [f"claims[{i}]: names gates {unknown} that the run does not record"]
    failed = [g for g in claim["gates"] if not gates[g]]
    verdict, p_holm, p_reverse_holm = claim["verdict"], claim.get("p_holm"), claim.get("p_reverse_holm")
    if verdict == "untestable" and not failed and claim["n"] > 0:
        out.append(f"claims[{i}]: 'untestable' needs a failed gate or an arm without rows")
    if verdict != "untestable" and failed:
        out.append(f"claims[{i}]: gates {failed} failed, so the verdict must be 'untestable', not {verdict!r}")
    if verdict == "reproduced" and not (p_holm is not None and p_holm < alpha):
        out.append(f"claims[{i}]: 'reproduced' needs a Holm-corrected p below alpha {alpha}, got {p_holm}")
    if verdict == "not reproduced" and not (p_reverse_holm is not None and p_reverse_holm < alpha):
        out.append(f"claims[{i}]: 'not reproduced' needs a corrected p reverse < {alpha}: {p_reverse_holm}")
    return out


def _gate_problems(gates: list[Any]) -> tuple[list[str], dict[str, bool]]:
    out, passed = [], {}
    for i, gate in enumerate(gates):
        if not (isinstance(gate, dict) and isinstance(gate.get("name"), str) and isinstance(gate.get("passed"), bool)
                and gate.get("description") and isinstance(gate.get("evidence"), str)):  # fmt: skip
            out.append(f"gates[{i}]: needs 'name', 'description', 'passed' (bool) and 'evidence'")
            continue
        if gate["name"] in passed:
            out.append(f"gates[{i}]: gate {gate['name']!r} appears twice")
        passed[gate["name"]] = gate["passed"]
    return out, passed


def _row_problems(i: int, row: Any) -> list[str]:
    if not isinstance(row, dict) or not isinstance(row.get("arm"), str):
        return [f"rows[{i}]: needs an 'arm' string"]
    out = []
    if not isinstance(row.get("setting", {}), dict):
        out.append(f"rows[{i}]: 'setting' must be an object")
    if isinstance(row.get("seed"), bool) or not isinstance(row.get("seed"), int):
        out.append(f"rows[{i}]: 'seed' must be an int")
    metrics = row.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return [*out, f"rows[{i}]: 'metrics' must be a non-empty object"]
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            out.append(f"rows[{i}].metrics.{name}: not a finite number")
    return out


def results_problems(path: str | Path, min_seeds: int = 3) -> list[str]:
    """One line per way in which ``path`` breaks the contract (see the module docstring)."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return [f"cannot read {path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"]
    if not isinstance(results, dict):
        return [f"{path} must hold a JSON object"]
    out = [f"top-level {key!r} missing or not {what}" for key, kind, what in _TOP_LEVEL
           if isinstance(results.get(key), bool) or not isinstance(results.get(key), kind)]  # fmt: skip
    rows = results.get("rows") if isinstance(results.get("rows"), list) else []
    seeds: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, row in enumerate(rows):
        found = _row_problems(i, row)
        out += found
        if isinstance(row, dict) and isinstance(row.get("arm"), str):
            seeds[(row["arm"], json.dumps(row.get("setting", {}), sort_keys=True))].add(row.get("seed"))
    out += [f"arm {arm!r} setting {setting}: {len(s)} seeds, need {min_seeds}"
            for (arm, setting), s in seeds.items() if len(s) < min_seeds]  # fmt: skip
    alpha = results.get("alpha")
    if _is(alpha, (int, float)) and not 0.0 < alpha < 0.5:
        out.append(f"alpha must lie in (0, 0.5), got {alpha}")
    gate_problems, gates = _gate_problems(results.get("gates") if isinstance(results.get("gates"), list) else [])
    out += gate_problems
    claims = results.get("claims") if isinstance(results.get("claims"), list) else []
    if not claims:
        out.append("no claims: say what the paper claims and whether it was reproduced")
    for i, claim in enumerate(claims):
        out += _claim_problems(i, claim, gates, float(alpha) if _is(alpha, (int, float)) else 0.05)
    if not (path.parent / "report.md").is_file():
        out.append("report.md missing beside results.json")
    return out

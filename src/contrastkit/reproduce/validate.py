"""The contract of a reproduction's ``results.json``, checked: ``contrastkit validate RESULTS_JSON [--min-seeds N]``.

::

    {"experiment": str, "command": str, "seconds": number,
     "rows": [{"arm": str, "setting": {...}, "seed": int, "metrics": {name: finite number}}],
     "claims": [{"claim": str, "verdict": one of VERDICTS, "evidence": str}]}

Every arm (with its setting) needs at least ``min_seeds`` seeds, the claims must not be empty (an unfinished run is
no reproduction), and ``report.md`` must stand beside the file. :func:`results_problems` returns one line per
problem (empty when the contract holds).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from contrastkit.reproduce.stats import VERDICTS

__all__ = ["results_problems"]

_TOP_LEVEL: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("experiment", str, "a string"),
    ("command", str, "a string"),
    ("seconds", (int, float), "a number"),
    ("rows", list, "a list"),
    ("claims", list, "a list"),
)


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
    claims = results.get("claims") if isinstance(results.get("claims"), list) else []
    if not claims:
        out.append("no claims: say what the paper claims and whether it was reproduced")
    for i, claim in enumerate(claims):
        if not isinstance(claim, dict) or claim.get("verdict") not in VERDICTS:
            out.append(f"claims[{i}]: verdict must be one of {sorted(VERDICTS)}")
        elif not claim.get("claim") or not claim.get("evidence"):
            out.append(f"claims[{i}]: needs 'claim' and 'evidence'")
    if not (path.parent / "report.md").is_file():
        out.append("report.md missing beside results.json")
    return out

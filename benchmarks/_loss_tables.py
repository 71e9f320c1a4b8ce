"""The markdown tables of ``benchmarks/loss_kernels.py``: timings, targets and memory runs of its result JSON."""

from __future__ import annotations

IMPLS = ("contrastkit", "reference", "pml")  # the implementations timed side by side


def fmt(x: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if x is None else f"{x * scale:.{digits}f}"


def tables(result: dict) -> list[str]:
    """The markdown tables of the timings, the targets and the memory runs."""
    lines = []
    if result["rows"]:
        lines += [f"Forward + backward, d = {result['settings']['dim']}, {result['threads']} threads, "
                  f"{result['device']}, median of {result['settings']['repeats']} (ms); abs err vs float64 reference",
                  "", "| loss | N | dtype | contrastkit | reference | pml | ck/ref | ck/ref fp32 | ck/pml "
                  "| abs err ck | abs err ref |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in result["rows"]:
            ms = [fmt(r["median_s"][i], 1e3) if r["median_s"][i] is not None else r["skipped"].get(i, "-")
                  for i in IMPLS]  # fmt: skip
            err = r["abs_err"] or {}
            lines.append(f"| {r['loss']} | {r['n']} | {r['dtype']} | {' | '.join(ms)} | {fmt(r['ratio_vs_reference'])} "
                         f"| {fmt(r['ratio_vs_reference_fp32'])} | {fmt(r['ratio_vs_pml'])} "
                         f"| {_err(err, 'contrastkit')} | {_err(err, 'reference')} |")  # fmt: skip
    if result["targets"]:
        lines += ["", "| target | loss | N | dtype | ratio | met |", "|---|---|---:|---|---:|---|"]
        lines += [f"| {t['target']} | {t['loss']} | {t['n']} | {t['dtype']} | {t['ratio']:.2f} | "
                  f"{'yes' if t['met'] else 'NO'} |" for t in result["targets"]]  # fmt: skip
    if result.get("memory"):
        lines += ["", "Peak extra memory of one forward + backward (MB, fresh process each)", "",
                  "| loss | dtype | N | contrastkit | reference |", "|---|---|---:|---:|---:|"]  # fmt: skip
        cells = {(r["loss"], r["dtype"], r["n"], r["impl"]): r for r in result["memory"]}
        for loss, dt, n in dict.fromkeys((r["loss"], r["dtype"], r["n"]) for r in result["memory"]):
            mb = [cells[(loss, dt, n, i)] for i in ("contrastkit", "reference")]
            lines.append(f"| {loss} | {dt} | {n} | "
                         + " | ".join(fmt(c["extra_mb"], digits=1) if c["extra_mb"] is not None else c["status"]
                                      for c in mb) + " |")  # fmt: skip
        lines.append("")
        for g in result["memory_growth"]:
            ks = ", ".join(f"{s['from_n']}->{s['to_n']}: N^{s['exponent']:.2f}" for s in g["steps"]) or "-"
            verdict = {True: "looks linear", False: "NOT linear", None: "too few sizes"}[g["looks_linear"]]
            lines.append(f"- {g['loss']} {g['dtype']} {g['impl']}: {ks} ({verdict})")
    return lines


def _err(err: dict, impl: str) -> str:
    return "-" if err.get(impl) is None else f"{err[impl]:.1e}"

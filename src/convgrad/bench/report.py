"""The benchmark record as a text table (the README's "Speed" section is a copy of it)."""

from __future__ import annotations

__all__ = ["format_table", "format_row"]

_ABBREV = {"forward": "fwd", "grad_input": "dx", "grad_weight": "dw"}


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}"


def _mb(b: int | None) -> str:
    return "—" if b is None else f"{b / 2**20:.0f}"


def _algorithms(choice: dict[str, str]) -> str:
    names = [choice["forward"], choice["grad_input"], choice["grad_weight"]]
    if len(set(names)) == 1:
        return names[0]
    return "/".join(names)


HEADER = (
    "| layer | fwd ms cg / pt | ratio | bwd ms cg / pt | ratio | fwd+bwd ms cg / pt | ratio "
    "| GFLOP/s cg / pt | % GEMM peak cg / pt | peak MiB cg / pt | algorithm: fwd/dx/dw |"
)
RULE = "|---|---|---|---|---|---|---|---|---|---|---|"


def format_row(entry: dict) -> str:
    med = entry["median"]
    cg = med["convgrad"]
    pt = med.get("torch", {})
    ratio = entry.get("ratio", {})
    g = entry.get("gflops", {})
    f = entry.get("fraction_of_peak", {})
    mem = entry.get("peak_memory", {})
    cells = [entry["name"]]
    for op in ("forward", "backward", "both"):
        cells.append(f"{_ms(cg[op])} / {_ms(pt.get(op))}")
        cells.append(_ratio(ratio.get(op)))
    gc = g.get("convgrad", {}).get("both")
    gp = g.get("torch", {}).get("both")
    cells.append(f"{gc:.0f} / {gp:.0f}" if gp is not None else f"{gc:.0f} / —")
    fc = f.get("convgrad", {}).get("both")
    fp = f.get("torch", {}).get("both")
    cells.append(f"{100 * fc:.0f} / {100 * fp:.0f}" if fp is not None else f"{100 * fc:.0f} / —")
    cells.append(f"{_mb(mem.get('convgrad'))} / {_mb(mem.get('torch'))}" if mem else "— / —")
    cells.append(_algorithms(entry["algorithms"]))
    return "| " + " | ".join(cells) + " |"


def format_table(record: dict) -> str:
    """The Markdown table, with the geometric means on the last line."""
    m = record["machine"]
    s = record["settings"]
    compared = s.get("with_torch", True) and m.get("torch")
    torch = f"PyTorch {m['torch']}" if compared else "convgrad alone (no PyTorch)"
    lines = [
        f"{record['date']} · {m['cpu']} · {m['cpus']} CPUs · {s['threads']} threads · NumPy {m['numpy']} "
        f"({m['blas']}) · {torch} · {s.get('dtype', 'float32')} · median of {s['repeats']} · "
        f"float32 GEMM peak {record['gemm_peak']:.0f} GFLOP/s · workspace limit {s['workspace_limit'] / 2**20:.0f} MiB"
        + (" · convgrad channels last (NHWC, HWIO)" if s.get("data_format") == "channels_last" else ""),
        "",
        HEADER,
        RULE,
    ]
    lines += [format_row(e) for e in record["layers"]]
    gm = record.get("geomean_ratio")
    if gm:
        worst = record["worst_ratio"]
        lines.append(
            f"| **geometric mean** | | **{_ratio(gm['forward'])}** | | **{_ratio(gm['backward'])}** | | "
            f"**{_ratio(gm['both'])}** | | | | worst fwd+bwd: {worst['both'][1]} {_ratio(worst['both'][0])} |"
        )
    return "\n".join(lines)

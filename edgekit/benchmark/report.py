"""``edgekit report``: result files -> Markdown + a self-contained HTML page.

Sections: the sources (file, date, machine); one table of every row (p50/p90/p99,
mean +- std, init and first run, throughput, size, peak memory and what loading the
model added to it (``+RSS``: peak minus the memory before loading), speed-ups against the
own and the original model's torch rows, accuracy: top-1, or MAE for label-distribution models, noisy
flag); a comparison across files when several are
given (before/after pruning, fp32 against int8, two machines: the same
model/runtime/threads matched up, change in p50); the figures of :mod:`plots`
(p50 with p90/p99 whiskers, the latency distribution, accuracy against latency with
its Pareto front, size and speed-up); failed rows with their errors; how the numbers
were measured. The HTML embeds its figures (base64 PNG) and needs nothing else;
the Markdown links the same PNGs written beside it.

Each row gets three speed-ups (:mod:`speedup`): against its own checkpoint's torch eager
row, against the original model's torch eager row, and against the original model on the
same runtime (a pruned int8 TFLite model against the original fp32 TFLite model). The
original is the root of the row's recorded lineage, or the model ``baseline=NAME`` names.
"""
from __future__ import annotations

import base64
import html
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..errors import EdgekitError
from ..fileio import Kind, atomic_path, check_writable
from . import plots
from .schema import load_results
from .speedup import Speedup, p50 as _p50, speedups

METHOD = ("Each row ran in its own process: the first inference is timed alone, then warm-up runs, then "
          "timed runs (each one timed separately with perf_counter_ns; Python's garbage collector paused). "
          "A run is one inference as an application makes it: input fed, model executed, output fetched. "
          "Percentiles interpolate linearly between order statistics; std is the sample standard deviation; "
          "a row is *noisy* when std/mean exceeds its threshold (default 10%). Rows from `adb` come from the "
          "phone tool's own summary (mean, min, max, std; no per-run times).")

SPEEDUP_METHOD = (
    "Every speed-up is the p50 of a reference row divided by the row's p50 (above 1: the row is faster), "
    "the reference measured at the same threads and batch on the same machine (in the same results file, "
    "else in another file from the same CPU and host); '-' where no reference row was measured. "
    "**x own torch**: reference = torch eager on the same checkpoint (the same sha256) - what the runtime, "
    "the precision and the export gave. "
    "**x original torch**: reference = torch eager on the original model - the root of the row's lineage, "
    "the checkpoint the pruned or distilled model descends from, recorded by hash - what compression and "
    "export gave together. "
    "**x original, same runtime**: reference = the original model on the same runtime and delegate, its "
    "fp32 row (else its row at this row's precision, named in brackets) - e.g. a pruned int8 TFLite model "
    "against the original fp32 TFLite model. "
    "Rows without a lineage (results from an older edgekit) find their own torch row by model name, or "
    "take the only torch model of their file (flagged); their original-model columns need `--baseline`.")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _source_labels(files: Sequence[Path]) -> list[str]:
    stems = [f.stem for f in files]
    counts = Counter(stems)
    return [f"{f.parent.name}/{f.stem}" if counts[f.stem] > 1 else f.stem for f in files]


def _label(row: dict[str, Any], multi: bool) -> str:
    delegate = row.get("delegate") or ""
    delegate = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
                "TensorrtExecutionProvider": "trt"}.get(delegate, delegate)
    text = f"{_model(row)} {row['runtime']}/{delegate} {row.get('precision') or ''} t{row['threads']}"
    if row.get("batch", 1) != 1:
        text += f" b{row['batch']}"
    return text + (f" [{row['_source']}]" if multi else "")


def _model(row: dict[str, Any]) -> str:
    """The model's name; a streaming artifact's rows say their latency is per frame."""
    return f"{row['model']} (per frame)" if row.get("per") == "frame" else str(row["model"])


def _device(row: dict[str, Any]) -> str:
    """Where the row ran: cpu / cuda / a phone's model, and the browser for LiteRT.js rows."""
    device = str(row.get("device") or "-")
    return f"{device} ({row['browser']})" if row.get("browser") else device


def _speedup_cells(row: dict[str, Any], sp: Speedup) -> list[str]:
    """The three speed-up cells of a row; the same-runtime one names the reference precision
    when it differs from the row's."""
    def x(v: float | None) -> str:
        return f"{v:.2f}x" if v else "-"

    same_rt = x(sp.original_runtime)
    if sp.original_runtime and sp.original_precision != row.get("precision"):
        same_rt += f" (vs {sp.original_precision})"
    return [x(sp.own), x(sp.original_torch), same_rt]


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in r) + " |" for r in body]
    return "\n".join(lines)


def _comparison(rows: list[dict[str, Any]], sources: list[str]) -> tuple[list[str], list[list[str]]] | None:
    """p50 of matching rows across result files, and the change against the first file."""
    if len(sources) < 2:
        return None

    def key(r: dict[str, Any], with_model: bool) -> tuple[Any, ...]:
        k = (r["runtime"], r.get("delegate"), r.get("precision"), r["threads"], r["batch"])
        return ((r["model"],) + k) if with_model else k

    for with_model in (True, False):
        table: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
        for r in rows:
            if not r.get("error"):
                table.setdefault(key(r, with_model), {}).setdefault(r["_source"], r)
        matched = {k: v for k, v in table.items() if len(v) > 1}
        if matched:
            break
    if not matched:
        return None
    header = (["model"] if with_model else []) + ["runtime", "delegate", "precision", "threads", "batch"]
    header += [f"p50 ms {s}" for s in sources] + [f"change {s}" for s in sources[1:]]
    body = []
    for k, per in matched.items():
        ref = _p50(per[sources[0]]) if sources[0] in per else None
        cells = [str(x) for x in k]
        cells += [_fmt(_p50(per[s])) if s in per else "-" for s in sources]
        for s in sources[1:]:
            cells.append(f"{(_p50(per[s]) / ref - 1) * 100:+.1f}%" if ref and s in per else "-")
        body.append(cells)
    if not with_model:
        header[0:0] = ["models"]
        for cells, (k, per) in zip(body, matched.items()):
            cells.insert(0, " vs ".join(per[s]["model"] for s in sources if s in per))
    return header, body


#: Every file a report writes into its folder.
REPORT_FILES = ("report.md", "report.html", "latency.png", "distribution.png", "pareto.png", "size_speedup.png")
_MARK = "## How these numbers were measured"


def _report_kind(name: str) -> Kind:
    """What an earlier report left under ``name``: a PNG, or a page carrying the report's method section."""
    if name.endswith(".png"):
        return Kind("a PNG figure", lambda p: p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n")
    mark = _MARK if name.endswith(".md") else html.escape(_MARK[3:])
    return Kind("an edgekit report", lambda p: p.stat().st_size < 64 << 20 and mark in p.read_text(errors="replace"))


def _figures(ok: list[dict[str, Any]], labels: list[str], ok_speed: list[Any]) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG) of every figure the successful rows support."""
    figures: list[tuple[str, str, bytes]] = []
    if not ok:
        return figures
    figures.append(("latency.png", "Latency: p50 with p90/p99 whiskers", plots.latency_plot(ok, labels)))
    dist = [(r, lab) for r, lab in zip(ok, labels) if r.get("latencies_ms")]
    if dist:
        figures.append(("distribution.png", "Latency distribution (every timed run)",
                        plots.distribution_plot([d[0] for d in dist], [d[1] for d in dist])))
    acc = [(r, lab) for r, lab in zip(ok, labels) if isinstance(r.get("accuracy"), dict)
           and r["accuracy"].get("top1") is not None]
    if acc:
        figures.append(("pareto.png", "Accuracy against latency, with the Pareto front",
                        plots.pareto_plot([a[0] for a in acc], [a[1] for a in acc])))
    figures.append(("size_speedup.png", "Size, and speed-up against the own and the original model's torch rows",
                    plots.size_speedup_plot(ok, labels, [s.own for s in ok_speed],
                                            [s.original_torch for s in ok_speed])))
    return figures


def _sources_section(sources: list[str], files: list[Path], docs: list[dict[str, Any]]) -> list[str]:
    """The Markdown table of the results files: where, when, on which machine, how many rows."""
    src_body = []
    for src, f, doc in zip(sources, files, docs):
        m = doc.get("machine") or {}
        n_fail = sum(1 for r in doc["rows"] if r.get("error"))
        src_body.append([src, str(f), str(doc.get("created", "-")),
                         f"{m.get('cpu', '-')} ({m.get('usable_cores', '-')}/{m.get('logical_cores', '-')} cores)",
                         str(m.get("os", "-")), f"{len(doc['rows'])} ({n_fail} failed)"])
    return [_table(["source", "file", "created", "CPU (usable/logical cores)", "OS", "rows"], src_body), ""]


def _results_table(rows: list[dict[str, Any]], speed: list[Any], multi: bool) -> tuple[list[str], list[list[str]]]:
    """The header and one row per successful measurement of the results table."""
    header = (["source"] if multi else []) + [
        "model", "runtime", "delegate", "precision", "threads", "batch", "device", "p50 ms", "p90 ms", "p99 ms",
        "mean ± std ms", "runs", "init ms", "first ms", "inputs/s", "size MB", "peak RSS MB", "+RSS MB",
        "x own torch", "x original torch", "x original, same runtime", "top-1 %", "MAE", "flags"]
    body = []
    for r, sp in zip(rows, speed):
        if r.get("error"):
            continue
        acc = r.get("accuracy") or {}
        flags = []
        if r.get("noisy"):
            flags.append(f"noisy (CV {r['cv']:.0%})")
        if sp.own_model and sp.own_model != r["model"]:
            flags.append(f"own torch row taken from {sp.own_model}")
        if sp.original and sp.original != r["model"]:
            flags.append(f"original: {sp.original}")
        if acc.get("error"):
            flags.append(f"accuracy: {acc['error']}")
        mean_std = f"{r['mean_ms']:.3f} ± {r['std_ms']:.3f}" if r.get("std_ms") is not None else _fmt(r.get("mean_ms"))
        body.append(([r["_source"]] if multi else []) + [
            _model(r), r["runtime"], str(r.get("delegate") or "-"), str(r.get("precision") or "-"),
            str(r["threads"]), str(r["batch"]), _device(r), _fmt(_p50(r)), _fmt(r.get("p90_ms")), _fmt(r.get("p99_ms")),
            mean_std, _fmt(r.get("timed_runs")), _fmt(r.get("init_ms"), 1), _fmt(r.get("first_run_ms"), 2),
            _fmt(r.get("throughput_ips"), 1), _fmt(r.get("model_size_mb"), 2), _fmt(r.get("peak_rss_mb"), 0),
            _fmt(r["peak_rss_mb"] - r["baseline_rss_mb"], 0) if r.get("baseline_rss_mb") is not None
            and r.get("peak_rss_mb") is not None else "-",
            *_speedup_cells(r, sp), _fmt(acc.get("top1"), 2), _fmt(acc.get("mae"), 3), "; ".join(flags)])
    return header, body


def report(result_files: Sequence[str | Path] | str | Path, output_dir: str | Path, *,
           baseline: str | None = None, title: str | None = None, force: bool = False) -> Path:
    """Write ``report.md``, ``report.html`` (self-contained) and the figures' PNGs into
    ``output_dir``; returns the HTML path."""
    files = [Path(result_files)] if isinstance(result_files, (str, Path)) else [Path(f) for f in result_files]
    if not files:
        raise EdgekitError("no results files to report")
    out = check_writable(output_dir, folder=True, inputs=files, writes=REPORT_FILES)
    for name in REPORT_FILES:  # a file of the folder that the report did not write is never replaced
        if (out / name).exists():
            check_writable(out / name, force, kind=_report_kind(name))
    docs = [load_results(f) for f in files]
    md_path, html_path = out / "report.md", out / "report.html"
    sources = _source_labels(files)
    rows: list[dict[str, Any]] = []
    for src, doc in zip(sources, docs):
        rows.extend({**r, "_source": src} for r in doc["rows"])
    if not rows:
        raise EdgekitError("the results files hold no rows")
    multi = len(files) > 1
    ok = [r for r in rows if not r.get("error")]
    failed = [r for r in rows if r.get("error")]
    speed = speedups(rows, baseline)
    ok_speed = [s for r, s in zip(rows, speed) if not r.get("error")]
    labels = [_label(r, multi) for r in ok]

    figures = _figures(ok, labels, ok_speed)

    # --- Markdown -------------------------------------------------------------------------
    title = title or "edgekit latency report"
    md: list[str] = [f"# {title}", "", "## Sources", ""]
    md += _sources_section(sources, files, docs)

    header, body = _results_table(rows, speed, multi)
    md += ["## Results", "", _table(header, body) if body else "_no successful rows_", ""]
    if any(r.get("per") == "frame" for r in ok):
        md += ["Rows marked **(per frame)** are streaming artifacts (one frame per call): their latencies are "
               "**per frame**, each call fed the states the previous call returned, their inputs/s are frames/s, "
               "and their top-1 is at the clip end (whole clips frame by frame).", ""]
    noisy = [r for r in ok if r.get("noisy")]
    if noisy:
        md += [f"**{len(noisy)} of {len(ok)} rows are noisy** (coefficient of variation above the threshold): "
               "the machine was busy or throttling while they ran; re-run them on a quiet machine before "
               "trusting small differences. Load average at start: "
               + ", ".join(sorted({_fmt(r.get('load_avg_1m'), 2) for r in noisy})) + ".", ""]
    comp = _comparison(rows, sources)
    if comp:
        md += ["## Comparison across result files", "", f"Change is p50 against `{sources[0]}`.", "",
               _table(*comp), ""]
    if figures:
        md += ["## Figures", ""]
        md += [f"### {caption}\n\n![{caption}]({name})\n" for name, caption, _ in figures]
    if failed:
        md += ["## Failed measurements", "",
               _table(["model", "artifact", "runtime", "threads", "error"],
                      [[r["model"] or "-", str(r.get("artifact")), r["runtime"], str(r["threads"]), r["error"]]
                       for r in failed]), ""]
    md += [_MARK, "", METHOD, "", SPEEDUP_METHOD, ""]
    md_text = "\n".join(md)

    out.mkdir(parents=True, exist_ok=True)
    for name, _, png in figures:
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(png)
    with atomic_path(md_path) as tmp:
        tmp.write_text(md_text)
    with atomic_path(html_path) as tmp:
        tmp.write_text(_html(title, md, figures))
    return html_path


def _html(title: str, md: list[str], figures: list[tuple[str, str, bytes]]) -> str:
    """A small Markdown subset (headings, tables, paragraphs, images) rendered to HTML,
    with the figures inlined as base64 PNG so the page stands alone."""
    pngs = {name: base64.b64encode(data).decode() for name, _, data in figures}
    parts: list[str] = []
    for block in "\n".join(md).split("\n\n"):
        block = block.strip()
        if not block:
            continue
        if block.startswith("#"):
            level = len(block) - len(block.lstrip("#"))
            parts.append(f"<h{level}>{html.escape(block[level:].strip())}</h{level}>")
        elif block.startswith("|"):
            lines = block.splitlines()
            cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if not ln.startswith("|---")]
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.startswith("!["):
            alt, name = block[2:].split("](", 1)
            parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{pngs[name.rstrip(")")]}">')
        else:
            text = html.escape(block).replace("**", "")
            parts.append(f"<p>{text}</p>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")

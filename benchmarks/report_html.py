"""report.html: the markdown report as one self-contained HTML page (no external files or
scripts), with plots embedded as base64 PNG: end-to-end latency against the targets, VAD and
feature timings, accuracy against parameters, and confusion matrices of the accuracy results.
Without matplotlib the page has the tables and says the plots are missing."""
from __future__ import annotations

import base64
import html
import io
import re

import numpy as np

from benchmarks import accuracy
from benchmarks.targets import (E2E_P95_HERE_MS, E2E_P95_TARGET_MS, FEATURE_SETS, INFORMATIONAL, MARK,
                                TARGET_CLIP_SECONDS, e2e_rows, medians, of_kind)
from train.result_sets import DEGRADATIONS, NOISE, REVERB, Degradation, degraded

MAX_CONFUSIONS = 8  # confusion matrices shown: the best result per (corpus, model)
STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}td.PASS{background:#d9f2d9}td.FAIL{background:#f8d0d0}td.FAIL.info{background:#fbe9c8}
code{background:#f3f3f3;padding:0 3px}
img{max-width:100%;border:1px solid #eee;margin:4px}"""
# Result cells of the targets tables -> CSS classes; an informational FAIL gets a milder colour.
RESULT_CLASSES = {**{MARK[v]: MARK[v] for v in (True, False)},
                  **{f"{MARK[v]} {INFORMATIONAL}": f"{MARK[v]} info" for v in (True, False)}}


# --- markdown (the subset report.py writes) -> HTML -------------------------------------------


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _td(cell: str) -> str:
    css = RESULT_CLASSES.get(cell)
    return f'<td class="{css}">{_inline(cell)}</td>' if css else f"<td>{_inline(cell)}</td>"


def markdown_to_html(text: str) -> str:
    """Headings, paragraphs, '- ' lists and pipe tables -> HTML body."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("|"):
            header, i = _cells(line), i + 2  # skip the |---| line
            body = []
            while i < len(lines) and lines[i].startswith("|"):
                body.append(_cells(lines[i]))
                i += 1
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>")
            for row in body:
                out.append("<tr>" + "".join(map(_td, row)) + "</tr>")
            out.append("</table>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


# --- plots ------------------------------------------------------------------------------------


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def latency_plot(bench: dict) -> str | None:
    """p50 and p95 of the 3 s end-to-end runs per model, with the 4 ms and 24 ms lines."""
    import matplotlib.pyplot as plt

    rows = {m: r[TARGET_CLIP_SECONDS] for m, r in e2e_rows(bench).items() if TARGET_CLIP_SECONDS in r}
    if not rows:
        return None
    names = sorted(rows, key=lambda m: rows[m]["p50"])
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(names) + 1.5))
    ax.barh(y + 0.2, [rows[m]["p50"] * 1e3 for m in names], 0.4, label="p50")
    ax.barh(y - 0.2, [(rows[m]["p95"] or 0) * 1e3 for m in names], 0.4, label="p95")
    ax.axvline(E2E_P95_HERE_MS, color="orange", ls="--", label=f"{E2E_P95_HERE_MS:g} ms (Pi 4 budget here, informational)")
    ax.axvline(E2E_P95_TARGET_MS, color="red", ls="--", label=f"{E2E_P95_TARGET_MS:g} ms target")
    ax.set_yticks(y, names)
    ax.set_xlabel(f"Recognizer.predict, {TARGET_CLIP_SECONDS} s WAV, 1 thread (ms)")
    ax.legend(fontsize=8)
    return _png(fig)


def timing_plot(bench: dict) -> str | None:
    """Log-mel of each feature set (3 s clip) and VAD (per audio second) medians side by side."""
    import matplotlib.pyplot as plt

    feats = [(f"{fs.title}, {TARGET_CLIP_SECONDS} s clip (ms)",
              {i: t for (i, s), t in medians(bench, fs.kind).items() if s == TARGET_CLIP_SECONDS})
             for fs in FEATURE_SETS]
    vad = {b["extra_info"]["impl"]: b["stats"]["median"] / b["extra_info"]["audio_seconds"] for b in of_kind(bench, "vad")}
    panels = [*feats, ("VAD, ms per audio second", vad)]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.5), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels):
        names = sorted(values, key=values.get)
        ax.barh(names, [values[n] * 1e3 for n in names], color=["tab:green" if n.startswith("edge_ser") else "tab:gray" for n in names])
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
    return _png(fig)


def tradeoff_plot(rows: list) -> str | None:
    """UA against parameters, one panel per corpus; models without a parameter count
    (the openSMILE + SVM baseline) as horizontal lines."""
    import matplotlib.pyplot as plt

    corpora = sorted({r.corpus for r in rows})
    if not corpora:
        return None
    fig, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 4), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        mine = [r for r in rows if r.corpus == corpus]
        for r in mine:
            label = f"{r.model} {r.result_set} ({r.protocol})"
            if r.n_parameters:
                ax.scatter(r.n_parameters / 1e6, 100 * r.ua)
                ax.annotate(label, (r.n_parameters / 1e6, 100 * r.ua), fontsize=7)
            else:
                ax.axhline(100 * r.ua, ls=":", color="gray")
                ax.annotate(label + " (no parameter count)", (0.02, 100 * r.ua), xycoords=("axes fraction", "data"),
                            fontsize=7, color="gray", va="bottom")
        ax.set_xscale("log")
        ax.margins(y=0.15)
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel("UA % (pooled)")
        ax.set_title(corpus, fontsize=10)
    return _png(fig)


def degraded_plot(rows: list, kind: Degradation = NOISE) -> str | None:
    """UA against the level of degradation `kind` for every model with such result sets, the clean
    clips beside the cleanest level; one panel per corpus and protocol."""
    import matplotlib.pyplot as plt

    mine = [r for r in rows if kind.value_of(r.result_set) is not None]
    panels = sorted({(r.corpus, r.protocol) for r in mine})
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (corpus, protocol) in zip(axes[0], panels):
        here = [r for r in mine if (r.corpus, r.protocol) == (corpus, protocol)]
        levels = [kind.value_of(r.result_set) for r in here]
        # SNR: clean one step past the highest; RT60: clean is 0 s.
        clean_at = max(levels) + 5 if kind.cleaner_above else 0.0
        for source, model in dict.fromkeys((r.source, r.model) for r in here):
            points = sorted((kind.value_of(r.result_set), 100 * r.ua) for r in here if (r.source, r.model) == (source, model))
            clean = accuracy.clean_row(rows, corpus, protocol, model)
            points = sorted(points + ([] if clean is None else [(clean_at, 100 * clean.ua)]))
            ax.plot(*zip(*points), marker="o", label=model)
        ax.set_xlabel(f"{kind.axis}; clean at {clean_at:g}")
        ax.set_ylabel("UA % (pooled)")
        ax.set_title(f"{corpus} {protocol}: {kind.scene}", fontsize=10)
        ax.legend(fontsize=6)
    return _png(fig)


def confusion_plots(rows: list) -> list[tuple[str, str]]:
    """[(caption, image)] for the best result of each (corpus, model), at most MAX_CONFUSIONS."""
    import matplotlib.pyplot as plt

    best = {}
    for r in rows:  # rows come sorted by UA, best first, within corpus and protocol
        key = (r.corpus, r.protocol, r.model)
        if r.confusion and key not in best:
            best[key] = r
    out = []
    for r in list(best.values())[:MAX_CONFUSIONS]:
        m = np.array(r.confusion)
        rates = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        n = len(r.labels)
        fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(n), r.labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(n), r.labels, fontsize=7)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
        ax.set_title(f"{r.corpus} {r.protocol}: {r.model} {r.result_set}\nUA {100 * r.ua:.1f} %", fontsize=8)
        out.append((f"{r.corpus} / {r.model} / {r.result_set}", _png(fig)))
    return out


def plots(bench: dict, acc_rows: list) -> tuple[list[tuple[str, str]], str | None]:
    """[(caption, data URI)] and a problem message when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return [], "matplotlib is not installed: no plots (pip install matplotlib)"
    out = []
    clean = [r for r in acc_rows if not degraded(r.result_set)]
    for caption, fn, arg in (("End-to-end latency", latency_plot, bench), ("Features and VAD", timing_plot, bench),
                             ("Accuracy vs parameters", tradeoff_plot, clean)):
        image = fn(arg)
        if image:
            out.append((caption, image))
    captions = {NOISE: "Accuracy in noise", REVERB: "Accuracy in reverberant rooms"}
    for kind in DEGRADATIONS:
        image = degraded_plot(acc_rows, kind)
        if image:
            out.append((captions[kind], image))
    out += [(f"Confusion matrix: {c}", image) for c, image in confusion_plots(clean)]
    return out, None


def render(markdown: str, bench: dict, acc_rows: list) -> str:
    images, problem = plots(bench, acc_rows)
    figures = "".join(f'<figure><img alt="{html.escape(c)}" src="{src}"><figcaption>{html.escape(c)}</figcaption></figure>'
                      for c, src in images)
    plot_section = "<h2>Plots</h2>" + (f"<p>{html.escape(problem)}</p>" if problem else figures)
    body = markdown_to_html(markdown)
    # Plots go right after the targets table, before the detailed tables.
    marker = "<h2>Models"
    body = body.replace(marker, plot_section + marker, 1) if marker in body else body + plot_section
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>edge-ser benchmark report</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")

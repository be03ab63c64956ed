"""The report page: one self-contained HTML file (inline CSS, no scripts, no external URLs)."""

from __future__ import annotations

import datetime

from .contents import SECTIONS, Report
from .devices import multi_device_html
from .runs import legend_label
from .table import escape, table_html

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
.meta { color: #555; }
figure { display: inline-block; vertical-align: top; margin: 0.5em 1.5% 1em 0; width: 48%; }
figure.wide { width: 80%; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.88em; color: #333; }
table { border-collapse: collapse; font-size: 0.86em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f2f2f2; text-align: center; }
td { white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
td:nth-child(-n+5) { text-align: left; }
table.runs td { text-align: left; white-space: normal; }
tr.pareto td { background: #e7f5e4; }
.missing { color: #a33; }
.note { color: #7a5a00; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.4em 0; }
"""


def render_page(report: Report) -> str:
    """The whole ``index.html`` of ``report``."""
    names = ", ".join(run.name for run in report.runs)
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>depthshrink report: {escape(names)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<h1>depthshrink report</h1>", _meta(report), _runs_section(report),
    ]
    for key, heading in SECTIONS.items():
        parts.append(_figure_section(report, key, heading))
    parts += [_table_section(report), multi_device_html(report.multi), _config_section(report), "</body>", "</html>"]
    return "\n".join(p for p in parts if p) + "\n"


def _meta(report: Report) -> str:
    from .. import __version__

    when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return (f'<p class="meta">{len(report.runs)} run(s), {len(report.table)} network(s); written {escape(when)} '
            f'by depthshrink {escape(__version__)}. The combined table: <a href="results.csv">results.csv</a>.</p>')


def _runs_section(report: Report) -> str:
    rows = []
    for run in report.runs:
        missing = ", ".join(escape(m) for m in run.missing)
        device = run.device
        peak = run.peak_flops_per_s
        settings = sorted(set(report.table.loc[report.table["run"] == run.name, "setting"]))
        rows.append(
            f"<tr><td>{escape(run.name)}</td><td>{escape(run.path)}</td><td>{escape(_model_text(run))}</td>"
            f"<td>{escape('; '.join(settings) or legend_label(device.get('device')))}</td>"
            f"<td>{escape(f'{peak:.3g}' if peak else '–')}</td><td>{escape(device.get('tool_version', '–'))}</td>"
            f"<td>{int((report.table['run'] == run.name).sum())}</td>"
            f"<td class=\"{'missing' if missing else ''}\">{missing or 'none'}</td></tr>")
    head = ("<tr><th>run</th><th>folder</th><th>model</th><th>device</th><th>peak FLOP/s</th>"
            "<th>tool version</th><th>networks</th><th>missing files</th></tr>")
    notes = [note for run in report.runs for note in run.notes]
    return ("<h2>Runs</h2>\n<table class=\"runs\">\n" + head + "\n" + "\n".join(rows) + "\n</table>"
            + _notes(notes))


def _model_text(run) -> str:
    if run.space is None:
        return "– (no space.json)"
    model = run.space.model
    parts = [str(model.get("name") or model.get("class") or "model")]
    if model.get("width_mult") is not None:
        parts.append(f"width ×{model['width_mult']}")
    size = model.get("resolution") or model.get("height")
    if size:
        parts.append(f"{size} px")
    if model.get("num_classes"):
        parts.append(f"{model['num_classes']} classes")
    parts.append(f"{run.space.num_layers} chain layers")
    return ", ".join(parts)


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    return "<ul>" + "".join(f'<li class="note">{escape(n)}</li>' for n in notes) + "</ul>"


def _figure_section(report: Report, key: str, heading: str) -> str:
    figures = [f for f in report.figures if f.section == key]
    body = [f'<h2 id="{key}">{escape(heading)}</h2>']
    for figure in figures:
        wide = ' class="wide"' if key == "segments" else ""
        body.append(f'<figure{wide}><img src="{escape(figure.file)}" alt="{escape(figure.title)}">'
                    f"<figcaption>{escape(figure.caption)}</figcaption></figure>")
    if not figures and not report.notes[key]:
        body.append('<p class="note">nothing to show</p>')
    body.append(_notes(report.notes[key]))
    return "\n".join(body)


def _table_section(report: Report) -> str:
    frame = report.table
    settings = frame["setting"].nunique()
    caption = ("One row per network. Accuracy on the test split; latency and throughput measured; "
               "utilisation = FLOPs per image × images/s over the device's peak FLOP/s (device.json). "
               "Pareto: no other network measured on the same device is at least as accurate and at least "
               "as fast (latency or throughput); Pareto-optimal rows are shaded.")
    if settings > 1:
        caption += f" {settings} measurement settings: Pareto flags are computed within each."
    return (f'<h2 id="table">6. All networks</h2>\n<p>{escape(caption)} Also as '
            f'<a href="results.csv">results.csv</a>.</p>\n<div class="scroll">{table_html(frame)}</div>')


def _config_section(report: Report) -> str:
    parts = ['<h2 id="config">Configuration</h2>']
    for run in report.runs:
        if run.config_text is None:
            parts.append(f'<p class="note">{escape(run.name)}: no config.toml</p>')
        else:
            parts.append(f"<details><summary>config.toml of {escape(run.name)}</summary>"
                         f"<pre>{escape(run.config_text)}</pre></details>")
        if run.device:
            text = "\n".join(f"{key} = {value}" for key, value in run.device.items())
            parts.append(f"<details><summary>device.json of {escape(run.name)}</summary>"
                         f"<pre>{escape(text)}</pre></details>")
    return "\n".join(parts)

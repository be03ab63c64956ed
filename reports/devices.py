"""The page's section on multi-device searches: each device's budget and the one network's
predicted latency there, beside the best network for that device's budget alone, and what meeting
every budget costs in importance."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..contracts.files import read_json
from ..errors import DepthshrinkError
from .table import escape


@dataclass(frozen=True)
class MultiDeviceSearch:
    name: str
    objective: float
    kept_activations: list[int]
    devices: list[dict]     # the masks file's "devices" rows


def read_multi_masks(path: str | os.PathLike) -> MultiDeviceSearch:
    data = read_json(path, "masks")
    devices = data.get("devices")
    if not isinstance(devices, list) or not devices:
        raise DepthshrinkError(f"{path} is not the masks file of a multi-device search (no 'devices')")
    return MultiDeviceSearch(Path(path).name, float(data.get("objective", 0.0)),
                             list(data.get("kept_activations", [])), devices)


def multi_device_html(searches: list[MultiDeviceSearch]) -> str:
    if not searches:
        return ""
    parts = ['<h2 id="devices">7. One network for several devices</h2>',
             "<p>Each row: one device of a multi-device search. The one network meets every budget; "
             "<em>alone</em> is the best network for that device's budget if it were the only one, with its "
             "predicted latency on every device of the search. The importance given up is what meeting "
             "every budget at once costs (the objective is the summed estimated accuracy change, higher is "
             "better).</p>"]
    for search in searches:
        labels = [d.get("label", f"device {i + 1}") for i, d in enumerate(search.devices)]
        head = ("<tr><th>device</th><th>budget ms</th><th>one network: predicted ms</th><th>fastest reachable ms</th>"
                "<th>alone: objective</th><th>alone: predicted ms on " + " / ".join(escape(x) for x in labels)
                + "</th><th>importance given up</th></tr>")
        rows = []
        for label, device in zip(labels, search.devices):
            alone = device.get("alone")
            alone_objective = f"{alone['objective']:+.3f}" if alone else "none fits"
            alone_ms = " / ".join(f"{v:.3f}" for v in alone["latency_ms"]) if alone else "–"
            given_up = f"{alone['objective'] - search.objective:.3f}" if alone else "–"
            rows.append(f"<tr><td>{escape(label)}</td><td>{device['latency_budget_ms']:.3f}</td>"
                        f"<td>{device['predicted_latency_ms']:.3f}</td><td>{device['fastest_latency_ms']:.3f}</td>"
                        f"<td>{alone_objective}</td><td>{alone_ms}</td><td>{given_up}</td></tr>")
        parts.append(f"<p><strong>{escape(search.name)}</strong>: objective {search.objective:+.3f}, kept activations "
                     f"{escape(search.kept_activations)}</p>")
        parts.append('<div class="scroll"><table>' + head + "".join(rows) + "</table></div>")
    return "\n".join(parts)

"""What a report holds: its sections, its figures and the runs it reads (no drawing, no HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .runs import RunFolder

# section key -> heading, in page order
SECTIONS = {
    "tradeoff": "1. Accuracy vs throughput and latency",
    "segments": "2. Per-segment latency before and after merging",
    "frontier": "3. The search frontier",
    "additivity": "4. LUT additivity: predicted vs measured whole-network latency",
    "parity": "5. The latency predictor",
}


@dataclass
class Figure:
    """One PNG of the page: its section, file name (relative to the report folder) and caption."""

    section: str
    file: str
    title: str
    caption: str


@dataclass
class Report:
    out_dir: Path
    runs: list[RunFolder]
    table: pd.DataFrame
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=lambda: {key: [] for key in SECTIONS})
    multi: list = field(default_factory=list)  # MultiDeviceSearch of each multi-device masks file

    @property
    def index_path(self) -> Path:
        return self.out_dir / "index.html"

    def add(self, section: str, file: str, title: str, caption: str) -> None:
        self.figures.append(Figure(section, file, title, caption))

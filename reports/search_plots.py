"""Figures of the search: per-segment latency before and after merging, and the DP frontier."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .plots import FIGSIZE, pyplot, save
from .runs import NetworkMasks, RunFolder

KERNEL_COLOURS = {1: "#4c72b0", 3: "#dd8452", 5: "#55a868", 7: "#c44e52", 9: "#8172b3", 11: "#937860"}
UNKNOWN_KERNEL_COLOUR = "#da8bc3"
SINGLE_LAYER_COLOURS = ("0.72", "0.84")


@dataclass(frozen=True)
class SegmentPiece:
    """One merge segment ``[start, end)`` of a network, its predicted latency and merged kernel size."""

    start: int
    end: int
    latency_ms: float
    kernel_size: int | None  # None where the chain space is unknown

    @property
    def merged(self) -> bool:
        return self.end - self.start > 1


def segment_pieces(masks: NetworkMasks, space) -> list[SegmentPiece] | None:
    """The segments of one masks file with their kernel sizes; ``None`` without ``segment_latency_ms``."""
    try:
        latencies, segments = masks.segment_latency_ms, masks.segments
    except (TypeError, ValueError):  # not numbers, or segments not [start, end] pairs
        return None
    if latencies is None or len(latencies) != len(segments):
        return None
    pieces = []
    for (start, end), latency in zip(segments, latencies):
        kernel = None
        if space is not None and 0 <= start < end <= space.num_layers:
            kernel = space.merged_shape(start, end).kernel_size
        pieces.append(SegmentPiece(start, end, latency, kernel))
    return pieces


def kernel_colour(kernel_size: int | None) -> str:
    if kernel_size is None:
        return UNKNOWN_KERNEL_COLOUR
    return KERNEL_COLOURS.get(kernel_size, KERNEL_COLOURS[11] if kernel_size > 11 else UNKNOWN_KERNEL_COLOUR)


def segment_bars_plot(bars: list[tuple[NetworkMasks, list[SegmentPiece]]], title: str, path) -> None:
    """Horizontal stacked bars, one per network: each piece one segment's predicted latency.

    Merged segments are coloured by their merged kernel size and labelled ``k×k`` where wide enough;
    single layers alternate two greys; the rest of the predicted whole-network latency (fixed
    part and call overhead) closes each bar, hatched.
    """
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(FIGSIZE[0] + 1.2, max(2.6, 0.55 * len(bars) + 1.6)))
    totals = [_bar_total(masks, pieces) for masks, pieces in bars]
    widest = max(totals) if totals else 1.0
    kernels_seen: set = set()
    for row, (_, pieces) in enumerate(bars):
        left = 0.0
        for i, piece in enumerate(pieces):
            colour = kernel_colour(piece.kernel_size) if piece.merged else SINGLE_LAYER_COLOURS[i % 2]
            axes.barh(row, piece.latency_ms, left=left, color=colour, edgecolor="white", linewidth=0.4, height=0.7)
            if piece.merged:
                kernels_seen.add(piece.kernel_size)
                if piece.latency_ms > 0.03 * widest and piece.kernel_size is not None:
                    k = piece.kernel_size
                    axes.text(left + piece.latency_ms / 2, row, f"{k}×{k}" if piece.latency_ms > 0.07 * widest
                              else f"{k}", ha="center", va="center", fontsize=7, color="white")
            left += piece.latency_ms
        if totals[row] > left:
            axes.barh(row, totals[row] - left, left=left, color="white", edgecolor="0.4", hatch="///",
                      linewidth=0.5, height=0.7)
        axes.text(totals[row] + 0.01 * widest, row, f"{totals[row]:.3f} ms", va="center", fontsize=7)
    axes.set_yticks(range(len(bars)), [masks.network for masks, _ in bars], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, widest * 1.18)
    axes.set(xlabel="predicted latency, cumulative over segments (ms)", title=title)
    axes.legend(handles=_bar_legend(kernels_seen), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                ncol=3, frameon=False)
    save(figure, path)


def _bar_total(masks: NetworkMasks, pieces: list[SegmentPiece]) -> float:
    summed = sum(p.latency_ms for p in pieces)
    try:
        predicted = float(masks.data.get("predicted_latency_ms"))
    except (TypeError, ValueError):
        return summed
    return max(summed, predicted)


def _bar_legend(kernels_seen: set) -> list:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=SINGLE_LAYER_COLOURS[0], label="single layer (not merged)")]
    for kernel in sorted(k for k in kernels_seen if k is not None):
        handles.append(Patch(facecolor=kernel_colour(kernel), label=f"merged, {kernel}×{kernel} kernel"))
    if None in kernels_seen:
        handles.append(Patch(facecolor=UNKNOWN_KERNEL_COLOUR, label="merged (no space.json)"))
    handles.append(Patch(facecolor="white", edgecolor="0.4", hatch="///", label="fixed part + call overhead"))
    return handles


def frontier_plot(run: RunFolder, title: str, path) -> int:
    """Importance vs predicted latency of each DP frontier of ``run``, chosen points and budgets marked.

    Returns the number of frontiers drawn (nothing is written when it is 0).
    """
    budgets = {m.network: m.data.get("latency_budget_ms") for m in run.masks}
    frontiers = {n: f for n, f in run.frontiers.items() if {"latency_ms", "importance"} <= set(f.columns) and len(f)}
    if not frontiers:
        return 0
    plt = pyplot()
    figure, axes = plt.subplots(figsize=FIGSIZE)
    for i, (network, frame) in enumerate(frontiers.items()):
        colour = f"C{i % 10}"
        frame = frame.sort_values("latency_ms")
        axes.plot(frame["latency_ms"], frame["importance"], drawstyle="steps-post", color=colour,
                  marker=".", markersize=4, linewidth=1, label=f"{network}: frontier ({len(frame)} points)")
        flags = frame["chosen"] if "chosen" in frame.columns else pd.Series(0, index=frame.index)
        chosen = frame[pd.to_numeric(flags, errors="coerce").fillna(0).astype(int) == 1]
        axes.scatter(chosen["latency_ms"], chosen["importance"], marker="*", s=180, color=colour,
                     edgecolor="black", linewidth=0.7, zorder=4, label=f"{network}: chosen")
        budget = pd.to_numeric(pd.Series([budgets.get(network)]), errors="coerce").iloc[0]
        if pd.notna(budget):
            axes.axvline(budget, color=colour, linestyle="--", linewidth=1, label=f"{network}: budget {budget:.3f} ms")
    axes.set(xlabel="predicted whole-network latency (ms)",
             ylabel=f"importance ({run.importance_unit})", title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    save(figure, path)
    return len(frontiers)

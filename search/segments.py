"""Candidate segments of a chain space, and the additive completion of an importance table.

No torch. Scoring every segment of a deep chain costs too much (561 for the small-input
MobileNetV2, each a held-out evaluation), so ``importance --max-removed K`` measures the
segments removing at most K activations and completes the rest additively: a longer segment
``[a, c)`` scores ``I(a, b) + I(site b alone) + I(b, c)``, with ``b`` the last activation site such
that ``[a, b)`` was measured (``I(b, c)`` measured or completed before it). Interactions across
the join are ignored; the table marks such rows ``source = additive``.
"""

from __future__ import annotations

import numpy as np

from ..contracts.space import ChainSpace
from .dp import fastest_splits


def candidate_segments(space: ChainSpace, max_removed: int | None = None) -> list[tuple[int, int]]:
    """Every ``[a, b)`` between activation sites (or the chain's ends) that removes at least one
    removable activation, none that is fixed, and splits into legal spans; shortest first."""
    sites = [s for s in space.sites if s.activation is not None]
    points = [0, *(s.position for s in sites), space.num_layers]
    removable = [s.position for s in sites if s.removable]
    fixed = [s.position for s in sites if not s.removable]
    reachable = np.isfinite(fastest_splits(space.num_layers, {k: 1.0 for k in space.spans})[0])
    found = []
    for i, a in enumerate(points):
        for b in points[i + 1:]:
            removed = sum(a < p < b for p in removable)
            if any(a < p < b for p in fixed):
                break
            if removed and reachable[a, b] and (max_removed is None or removed <= max_removed):
                found.append((a, b))
    return sorted(found, key=lambda s: (s[1] - s[0], s[0]))


def complete_additively(space: ChainSpace, measured: dict[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    """Scores for every candidate segment: ``measured`` ones as they are, the others composed."""
    cuts = [0, *sorted(s.position for s in space.sites if s.activation is not None), space.num_layers]
    alone = {cuts[i]: measured.get((cuts[i - 1], cuts[i + 1])) for i in range(1, len(cuts) - 1)}
    scores = dict(measured)
    for a, c in candidate_segments(space):  # shortest first: the pieces are done before
        if (a, c) in scores:
            continue
        inside = [b for b in cuts if a < b < c and alone.get(b) is not None
                  and ((a, b) in measured or _no_removal(space, a, b))]
        for b in reversed(inside):
            rest = scores.get((b, c), 0.0 if _no_removal(space, b, c) else None)
            if rest is not None:
                scores[(a, c)] = measured.get((a, b), 0.0) + alone[b] + rest
                break
    return scores


def _no_removal(space: ChainSpace, b: int, c: int) -> bool:
    return not any(b < s.position < c and s.activation is not None for s in space.sites)

"""A budget the network keeps when measured (``search --verify``, ``depthshrink run``).

The search picks a network by the table's prediction; this builds it, times it whole on this
machine the way the table's whole networks were timed, and when it is over the budget solves
again with the search's budget tightened by the measured overshoot, until the measured network
meets the budget or no network fits the tightened budget (then the fastest network measured is
named). Each round is recorded in the masks file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DepthshrinkError, OutOfReach
from ..profiler.timing import Timing, TimingProtocol
from ..search.budget import Budget
from ..search.problem import SearchProblem
from ..search.run import SearchResult

MAX_ROUNDS = 6
PROTOCOL = TimingProtocol(warmup_ms=300, min_runs=20, min_time_ms=1500, passes=3)  # profile-device's defaults, longer


@dataclass
class VerifiedSearch:
    result: SearchResult                  # the round's search whose network is kept
    timing: Timing                        # its network, measured whole
    budget_ms: float                      # what the user asked for
    rounds: list[dict]                    # every round's search and measurement
    kept_round: int                       # the round kept (1-based): the last, or if not met the fastest measured

    @property
    def met(self) -> bool:
        return self.timing.latency_ms <= self.budget_ms

    def record(self) -> dict:
        """The fields the masks file gets: the budget is the user's (the kept round's search ran with a
        tightened one, ``search_budget_ms``; every round's is in ``verify_rounds``)."""
        t, kept = self.timing, self.rounds[self.kept_round - 1]
        return {"latency_budget_ms": round(self.budget_ms, 6), "search_budget_ms": kept["search_budget_ms"],
                "kept_round": kept["round"],
                "measured_latency_ms": round(t.latency_ms, 6), "measured_p10_ms": round(t.latency_p10_ms, 6),
                "measured_p90_ms": round(t.latency_p90_ms, 6), "measured_runs": t.runs,
                "budget_met_when_measured": self.met, "verify_rounds": self.rounds}


def check_same_machine(setting: dict) -> None:
    """Refuse to verify a table of another device on this one."""
    from ..contracts.setting import on_cpu
    from ..profiler.devices import cpu_label, resolve_gpu

    device = str(setting.get("device") or "")
    if on_cpu(setting):  # a label of the user's own (--device-label) names no CPU model to compare
        here = cpu_label()
        if device.startswith("cpu-") and device != here:
            raise DepthshrinkError(f"--verify times the network on this machine ({here}), but the table is of "
                                   f"{device}: verify where the table was measured")
    else:
        try:
            resolve_gpu(device)  # names the GPUs here when none is this one
        except DepthshrinkError as exc:
            raise DepthshrinkError(f"--verify times the network on this machine, but the table is of {device}: "
                                   f"verify where the table was measured ({exc})") from None


def search_verified(problem: SearchProblem, budget: Budget, solve: Callable[[SearchProblem, Budget], SearchResult],
                    measure: Callable[[SearchResult], Timing], max_rounds: int = MAX_ROUNDS,
                    progress: Callable[[str], None] = print) -> VerifiedSearch:
    """Search, build, measure; tighten the search's budget to the network's prediction less its
    measured overshoot until the measured network meets ``budget``. Raises :class:`OutOfReach` (naming the fastest network
    measured) when a tightened budget leaves no network."""
    target_ms = budget.resolve_ms(problem.original_ms)
    search_ms, rounds, best = target_ms, [], None
    for number in range(1, max_rounds + 1):
        try:
            result = solve(problem, Budget(latency_ms=search_ms))
        except OutOfReach as exc:
            if best is None:
                raise
            raise OutOfReach(f"no network measures within {target_ms:.3f} ms: the fastest measured ran "
                             f"{best[1].latency_ms:.3f} ms (round {best[0]}); tightened to {search_ms:.3f} ms "
                             f"the search finds none ({str(exc).split(': ', 1)[-1]})") from None
        timing = measure(result)
        predicted = result.masks.extra["predicted_latency_ms"]
        rounds.append({"round": number, "search_budget_ms": round(search_ms, 6), "predicted_latency_ms": predicted,
                       "measured_latency_ms": round(timing.latency_ms, 6),
                       "measured_p10_ms": round(timing.latency_p10_ms, 6),
                       "measured_p90_ms": round(timing.latency_p90_ms, 6),
                       "kept_activations": result.masks.kept_activations,
                       "segments": [list(s) for s in result.masks.segments]})
        progress(f"verify round {number}: search budget {search_ms:.3f} ms, predicted {predicted:.3f} ms, "
                 f"measured {timing.latency_ms:.3f} ms (p10-p90 {timing.latency_p10_ms:.3f}-"
                 f"{timing.latency_p90_ms:.3f}) against {target_ms:.3f} ms")
        if best is None or timing.latency_ms < best[1].latency_ms:
            best = (number, timing, result)
        verified = VerifiedSearch(result, timing, target_ms, rounds, number)
        if verified.met:
            return verified
        # the overshoot the table missed, taken off what this network was predicted to take (not off the
        # search's budget, which a network predicted well under it would meet again: measured twice)
        search_ms = min(search_ms, predicted) * target_ms / timing.latency_ms
    number, timing, result = best  # not met within the rounds: the network that came closest, said by the caller
    return VerifiedSearch(result, timing, target_ms, rounds, number)  # (the masks file records every round)


def search_one_device(device, method: str, verify: bool, rounds: int = MAX_ROUNDS):
    """(search result, masks, :class:`VerifiedSearch` or None) of one device's problem
    (:class:`..search.api.DeviceProblem`): solved by ``method``, and with ``verify`` measured on this
    machine and tightened until it keeps the budget (the masks then record every round)."""
    from ..search.api import single_masks, solver

    solve, verified = solver(method), None
    if verify:
        check_same_machine(device.problem.setting)
        verified = search_verified(device.problem, device.budget, solve,
                                   network_timer(device.problem.space, device.problem.setting), rounds)
        result = verified.result
    else:
        result = solve(device.problem, device.budget)
    masks = single_masks(result, device)
    if verified is not None:
        masks.extra.update(verified.record())
    return result, masks, verified


def network_timer(space, setting: dict, protocol: TimingProtocol | None = None) -> Callable[[SearchResult], Timing]:
    """Times the network a search result describes: the model of ``space`` (its weights do not
    change its latency), activations removed and segments merged as the masks say, at the table's
    batch size, on the table's backend."""
    from ..export.networks import time_network
    from ..shrink.apply import apply_masks
    from ..shrink.merge import merge
    from ..shrink.rebuild import build_from_spec

    model, traced = build_from_spec(space.model)
    info = space.model
    shape = (int(setting.get("batch_size") or 1), info["in_channels"], info["height"], info["width"])

    def measure(result: SearchResult) -> Timing:
        merged = merge(apply_masks(model, traced, result.masks).eval())
        return time_network(merged, shape, setting, protocol or PROTOCOL)

    return measure

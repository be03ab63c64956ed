"""The pipeline's search stage: the original network's masks (every activation kept) and, for
every shrunk network, the search at its budget (verified on this machine unless
``[search] verify = false``), each written under ``search/``."""

from __future__ import annotations

from ..contracts.files import write_json_atomic
from ..contracts.space import ChainSpace
from ..errors import OutOfReach
from .networks import Network, stage


def search_networks(pipeline, networks: list[Network]) -> list[Network]:
    """Masks for every shrunk network; those whose budget is out of reach are left out."""
    from ..search.api import device_problem
    from ..search.budget import Budget, parse_budget
    from ..search.problem import read_importance

    folder = pipeline.run / "search"
    folder.mkdir(exist_ok=True)
    space = ChainSpace.from_json(pipeline.run / "space.json")
    importance = read_importance(pipeline.run / "importance.csv", space)
    filters = pipeline.lut_filters()

    def problem(budget: Budget):
        return device_problem(space, [pipeline.run / "lut.csv"], budget, importance, filters)

    if not (folder / "original.json").exists():  # the unchanged network, with its per-layer latencies
        from ..search.api import single_masks
        from ..search.run import original_network

        device = problem(Budget(speedup=1.0))
        masks = single_masks(original_network(device.problem), device)
        write_json_atomic(folder / "original.json", masks.to_dict())
    for network in networks:
        if network.kind in ("dp", "depthshrinker") and not (pipeline.run / network.masks).exists():
            stage(f"search {network.name}")
            try:
                _search_one(pipeline, network, problem(parse_budget(network.budget)))
            except OutOfReach as exc:  # a budget out of reach: the other networks still run
                print(f"!! {network.name} is left out: {exc}", flush=True)
    return [n for n in networks if not n.masks or (pipeline.run / n.masks).exists()]


def _search_one(pipeline, network: Network, device) -> None:
    from ..search.api import write_frontier
    from .verify import search_one_device

    verify = pipeline.config.search.verify and not pipeline.config.profile.luts
    if pipeline.config.search.verify and not verify:
        print("not verified: the LUT comes from [profile] luts, measured elsewhere (verify where it was measured)")
    result, masks, verified = search_one_device(device, network.kind, verify)
    masks.to_json(pipeline.run / network.masks)
    if result.frontier:
        write_frontier(result, device.problem, (pipeline.run / network.masks).with_suffix(".frontier.csv"))
    print(f"predicted {masks.extra['predicted_latency_ms']:.4f} ms for a budget of {result.budget_ms:.4f} ms"
          + (f", measured {verified.timing.latency_ms:.4f} ms" if verified else ""))
    if verified is not None and not verified.met:
        print(f"!! {network.name} still measures {verified.timing.latency_ms:.4f} ms against its budget of "
              f"{verified.budget_ms:.4f} ms after {len(verified.rounds)} rounds: round {verified.kept_round}'s "
              "network, the fastest measured, is kept, and every round recorded in its masks file",
              flush=True)

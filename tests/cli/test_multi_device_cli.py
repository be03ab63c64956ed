"""``search`` with several --lut/--latency-budget pairs on the shipped CPU and H100 tables, its
masks file and surface, its refusals, and the report's section on it."""

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from depthshrink.cli.main import main

LUT = Path(__file__).parents[2] / "lut"
CPU = LUT / "mobilenet_v2_224_b1_onnxruntime_cpu.csv"
H100 = LUT / "h100_torch_eager" / "mobilenet_v2_224_b1_torch_h100_tf32.csv"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from depthshrink.contracts.space import ChainSpace
    from depthshrink.search.segments import candidate_segments

    folder = tmp_path_factory.mktemp("multi")
    assert main(["space", "--model", "mobilenet_v2", "--resolution", "224", "--out", str(folder / "space.json")]) == 0
    space = ChainSpace.from_json(folder / "space.json")
    rng = random.Random(0)
    weight = {p: rng.uniform(0.05, 1.0) for p in range(space.num_layers)}
    rows = "".join(f"{a},{b},{-sum(weight[p] for p in range(a + 1, b)):.4f}\n" for a, b in candidate_segments(space, 4))
    (folder / "importance.csv").write_text("start,end,importance\n" + rows)
    return folder


def _search(inputs, out, *pairs):
    argv = ["search", "--space", str(inputs / "space.json"), "--importance", str(inputs / "importance.csv"),
            "--out", str(out)]
    for lut, budget in pairs:
        argv += ["--lut", str(lut), "--latency-budget", budget]
    return main(argv)


def test_one_network_meets_a_budget_on_each_device(inputs, tmp_path, capsys):
    out = tmp_path / "both.json"
    assert _search(inputs, out, (CPU, "1.3x"), (H100, "2x")) == 0
    masks = json.loads(out.read_text())
    devices = masks["devices"]
    assert [d["backend"] for d in devices] == ["onnxruntime", "torch"]
    for device in devices:
        assert device["predicted_latency_ms"] <= device["latency_budget_ms"]
        assert len(device["segment_latency_ms"]) == len(masks["segments"])  # one split for every device
        assert device["alone"]["objective"] >= masks["objective"]  # meeting both can only cost importance
    surface = pd.read_csv(out.with_suffix(".frontier.csv"))
    assert {"objective", "kept_activations", "chosen"} <= set(surface.columns) and surface["chosen"].sum() == 1
    text = capsys.readouterr().out
    assert "one network for 2 devices" in text and text.count("budget") >= 2

    run = tmp_path / "run"  # the report shows it beside each device alone
    run.mkdir()
    (run / "results.csv").write_text("network,kind,accuracy,latency_ms\noriginal,original,0.9,0.5\n")
    assert main(["report", str(run), "--multi-device", str(out), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "One network for several devices" in page
    assert all(d["label"] in page and f"{d['predicted_latency_ms']:.3f}" in page for d in devices)


def test_an_infeasible_pair_names_each_devices_fastest(inputs, tmp_path, capsys):
    assert _search(inputs, tmp_path / "no.json", (CPU, "3x"), (H100, "2x")) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fastest achievable" in err[0] and "cpu-amd-epyc" in err[0] and "h100" in err[0]
    assert not (tmp_path / "no.json").exists()
    assert main(["search", "--space", str(inputs / "space.json"), "--importance", str(inputs / "importance.csv"),
                 "--lut", str(CPU), "--lut", str(H100), "--latency-budget", "2x", "--out", str(tmp_path / "x.json")]) == 1
    assert "in pairs" in capsys.readouterr().err

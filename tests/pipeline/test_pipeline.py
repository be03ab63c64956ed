"""``depthshrink run``: settings checked key by key, and a whole (tiny) run that a second call
resumes without redoing anything."""

import json
import re
import time
import tomllib

import pandas as pd
import pytest

from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.pipeline.config import PipelineConfig
from depthshrink.pipeline.networks import RESULT_COLUMNS
from depthshrink.training.train import load_checkpoint


def test_config_round_trips_through_toml():
    config = PipelineConfig.from_dict({"search": {"budgets": ["2 ms", "1.5x"]}, "baselines": {"width_mults": [0.25]},
                                       "train": {"lr": 1}, "seed": 3})
    assert config.search.budgets == ["2 ms", "1.5x"] and config.train.lr == 1.0 and config.seed == 3
    assert PipelineConfig.from_dict(tomllib.loads(config.to_toml())) == config
    assert PipelineConfig.from_dict(tomllib.loads(PipelineConfig().to_toml())) == PipelineConfig()


@pytest.mark.parametrize("data, message", [
    ({"train": {"epoch": 2}}, r"unknown key 'epoch'; valid keys: weights, epochs"),
    ({"trian": {}}, r"unknown key 'trian'; valid keys: model, data, train"),
    ({"train": {"epochs": "2"}}, r"epochs must be int"),
    ({"search": {"budgets": "1.5x"}}, r"budgets must be a list"),
    ({"model": 3}, r"\[model\] must be a table"),
    ({"measure": {"passes": 0}}, r"\[measure\] passes must be at least 1"),
    ({"profile": {"cache_flush": "yes"}}, r"cache_flush must be auto, on or off"),
    # refused when read, not hours later at the search (a budget) or the measure stage (a method)
    ({"search": {"budgets": ["1.5"]}}, r"\[search\] budgets: cannot read latency budget '1.5'"),
    ({"search": {"methods": ["DP"]}}, r"\[search\] methods: no method 'DP'; the methods are dp, depthshrinker"),
    ({"baselines": {"pruning_ratios": [1.5]}}, r"pruning_ratios must lie between 0 and 1"),
    ({"baselines": {"width_mults": [0]}}, r"width_mults must be positive"),
    ({"finetune": {"seeds": []}}, r"\[finetune\] needs at least one seed"),
    ({"finetune": {"distill": 1.5}}, r"\[finetune\]: the distill weight must be in \[0, 1\]"),
    ({"train": {"weight_decay": -1.0}}, r"\[train\]: the weight decay must be in"),
    ({"profile": {"threads": 0}}, r"\[profile\] threads must be at least 1"),
    ({"profile": {"budget_fraction": 0.0}}, r"\[profile\] budget_fraction must be in \(0, 1\]"),
    ({"measure": {"throughput_batch_size": 0}}, r"\[measure\] throughput_batch_size must be at least 1"),
    # a review of 2026-12-06: each of these ran, crashed hours in, or gave numbers that mean nothing
    ({"finetune": {"seeds": [0, 0]}}, r"\[finetune\] seeds holds a value twice"),  # a standard error of 0
    ({"search": {"budgets": ["1.5x", "1.5 x"]}}, r"\[search\] budgets holds a value twice"),
    ({"search": {"methods": ["dp", "dp"]}}, r"\[search\] methods holds a value twice"),
    ({"baselines": {"pruning_ratios": [0.3, 0.3]}}, r"pruning_ratios holds a value twice"),
    ({"finetune": {"epochs": 0}}, r"\[finetune\]: the epochs must be a positive integer"),  # ZeroDivisionError
    ({"train": {"batch_size": 0}}, r"\[train\]: the batch size must be a positive integer"),
    ({"data": {"test_images": -1}}, r"\[data\] test_images must be 0 \(all\) or more"),
    ({"data": {"subset": -5}}, r"\[data\] subset must be 0 \(all\) or more"),
    ({"model": {"width_mult": float("nan")}}, r"\[model\] width_mult must be a positive number"),
    ({"model": {"width_mult": -1.0}}, r"\[model\] width_mult must be a positive number"),
    ({"baselines": {"width_mults": [float("inf")]}}, r"width_mults must be positive"),
    ({"importance": {"bn_images": 0}}, r"\[importance\] bn_images must be at least 1"),
    ({"importance": {"max_removed": -1}}, r"\[importance\] max_removed must be 0 \(all\) or more"),
    ({"importance": {"method": "zeroshot"}}, r"\[importance\] method must be one of zero-shot, probe, masks"),
])
def test_bad_settings_are_named(data, message):
    with pytest.raises(DepthshrinkError, match=message):
        PipelineConfig.from_dict(data)


def test_run_command_refuses_a_bad_config_file(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("[train]\nepoch = 2\n")
    assert main(["run", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "run")]) == 1
    assert "unknown key 'epoch'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["run", "--config", str(tmp_path / "missing.toml")]) == 1


def test_a_run_folder_of_other_settings_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(PipelineConfig.from_dict({"train": {"epochs": 9}}).to_toml())
    assert main(["run", "--out", str(run)]) == 1
    assert re.search(r"holds a run with other settings \((data, )?train differ", capsys.readouterr().err)
    (run / "config.toml").write_text(PipelineConfig.from_dict({"search": {"budgets": ["2x"]}}).to_toml())
    from depthshrink.pipeline.stages import Pipeline
    Pipeline(PipelineConfig(), run)._check_earlier_settings()  # new budgets are fine
    (run / "config.toml").write_text(PipelineConfig.from_dict({"search": {"verify": False}}).to_toml())
    with pytest.raises(DepthshrinkError, match=r"\(\[search\] verify differ"):  # was accepted; masks unverified
        Pipeline(PipelineConfig(), run)._check_earlier_settings()


def test_seeds_are_added_to_a_run_after_the_earlier_ones_whose_trainings_are_kept(tmp_path):
    from depthshrink.pipeline.networks import seed_folders
    from depthshrink.pipeline.stages import Pipeline

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(PipelineConfig.from_dict({"finetune": {"seeds": [0]}}).to_toml())
    Pipeline(PipelineConfig.from_dict({"finetune": {"seeds": [0, 1, 2]}, "baselines": {"width_seeds": [0, 5]}}),
             run)._check_earlier_settings()
    for settings, named in (({"finetune": {"seeds": [1, 2]}}, r"finetune\] seeds \(may only be extended: \[0\]"),
                            ({"finetune": {"seeds": [0], "epochs": 9}}, r"\(finetune differ")):
        with pytest.raises(DepthshrinkError, match=named):
            Pipeline(PipelineConfig.from_dict(settings), run)._check_earlier_settings()
    # the first seed trains where a one-seed run trained (the folder the merge reads); the others inside it
    assert seed_folders(run / "ft", [0]) == [run / "ft"]
    assert seed_folders(run / "ft", [0, 1, 2]) == [run / "ft", run / "ft" / "seed1", run / "ft" / "seed2"]


TINY = """
[model]
name = "tiny_mobilenet"
width_mult = 1.0
resolution = 28
[data]
source = "synthetic"
subset = 512
test_images = 200
[train]
weights = ""  # trained here: the shipped base is the demo model's
epochs = 1
batch_size = 64
[profile]
budget_fraction = 0.3
min_time_ms = 20.0
[importance]
max_removed = 2
bn_images = 128
held_out_images = 100
[search]
budgets = ["1x", "1.03x"]  # 28 px: the tiny net merges to ~1.08x at most
verify = false  # µs-scale networks on a loaded machine (verification: tests/pipeline/test_verify.py)
[finetune]
epochs = 1
batch_size = 64
[baselines]
width_mults = [0.5]
pruning_ratios = [0.5]
[measure]
min_time_ms = 20.0
throughput_batch_size = 8
"""


def test_a_tiny_run_end_to_end_then_resumed(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    run = tmp_path / "run"
    assert main(["run", "--config", str(tmp_path / "tiny.toml"), "--out", str(run)]) == 0
    results = pd.read_csv(run / "results.csv")
    assert list(results.columns) == RESULT_COLUMNS
    assert set(results["kind"]) <= {"original", "dp", "depthshrinker", "width", "pruned"}
    assert {"original", "dp-1x", "depthshrinker-1x", "width-0.5", "pruned-0.5"} <= set(results["network"])
    assert results["accuracy"].between(0, 1).all() and (results["latency_ms"] > 0).all()
    assert (results["test_images"] == 200).all()
    shrunk = results[results["kind"].isin(["dp", "depthshrinker"])].set_index("network")
    for name, row in shrunk.iterrows():  # 1.03x may be out of reach on a slow-merging machine
        masks = json.loads((run / "search" / f"{name}.json").read_text())
        assert row["predicted_latency_ms"] == pytest.approx(masks["predicted_latency_ms"])
        assert masks["predicted_latency_ms"] <= masks["latency_budget_ms"]
    original = json.loads((run / "search" / "original.json").read_text())
    assert original["method"] == "original" and original["removed_activations"] == []
    for name in ("config.toml", "device.json", "space.json", "lut.csv", "lut.validation.json", "importance.csv",
                 "networks/dp-1x/merged.onnx", "report/index.html"):
        assert (run / name).exists(), name
    assert PipelineConfig.read(run / "config.toml").model.name == "tiny_mobilenet"
    assert json.loads((run / "device.json").read_text())["peak_flops_per_s"] > 1e8
    for trained in ("baselines/pruned-0.5", "baselines/width-0.5", "finetune/dp-1x"):  # a resume checks its data
        assert load_checkpoint(run / trained / "last.pt")["spec"]["data"] == {"source": "synthetic", "subset": 512}
    capsys.readouterr()

    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and "report" not in p.parts}
    began = time.perf_counter()
    assert main(["run", "--config", str(tmp_path / "tiny.toml"), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "== base" not in out and "== importance" not in out and "== measure" not in out
    changed = [p for p, stamp in stamps.items() if p.stat().st_mtime_ns != stamp and p.name not in
               ("config.toml", "results.csv")]
    assert changed == [] and time.perf_counter() - began < 120  # nothing trained, profiled or measured again

    # a width seed added later: it is trained, and every network is timed again in the same passes as
    # the new one (the old code timed the new network alone, its speed-up against another session's
    # original); the accuracies measured before are kept, not evaluated again (a marker survives)
    def results() -> dict:
        return {p.parent.name: json.loads(p.read_text()) for p in run.glob("networks/*/result.json")}

    before = results()
    marked = run / "networks" / "original" / "result.json"
    marked.write_text(json.dumps({**before["original"], "accuracy_seeds": [0.123]}))
    (tmp_path / "tiny.toml").write_text(TINY.replace("width_mults = [0.5]", "width_mults = [0.5]\nwidth_seeds = [0, 1]"))
    time.sleep(1)  # another second: another timed_at
    assert main(["run", "--config", str(tmp_path / "tiny.toml"), "--out", str(run)]) == 0
    assert "== measure width-0.5; time all networks in the same passes" in capsys.readouterr().out
    again = results()
    assert again.keys() == before.keys() and len({r["timed_at"] for r in again.values()}) == 1
    assert again["original"]["timed_at"] != before["original"]["timed_at"]
    assert again["original"]["accuracy_seeds"] == [0.123] and again["original"]["accuracy"] == 0.123
    assert again["width-0.5"]["seeds"] == 2
    for name, result in before.items():
        if name not in ("width-0.5", "original"):
            assert again[name]["accuracy_seeds"] == result["accuracy_seeds"], name

    # results timed apart (a measure stage killed halfway), or of an older run (no timed_at): timed again together
    for change in ({"timed_at": "2026-01-01T00:00:00+00:00"}, {"timed_at": None}):
        marked.write_text(json.dumps({k: v for k, v in {**json.loads(marked.read_text()), **change}.items()
                                      if v is not None}))
        assert main(["run", "--config", str(tmp_path / "tiny.toml"), "--out", str(run)]) == 0
        assert "== measure nothing new; time all networks in the same passes" in capsys.readouterr().out
        assert len({r["timed_at"] for r in results().values()}) == 1 and results()["original"]["accuracy"] == 0.123

    # the same networks timed on another device from the packed files a GPU machine would get
    from depthshrink.pipeline.other_device import pack, time_on_device

    packed = tmp_path / "packed"
    pack(run, packed)
    assert not (packed / "finetune").exists() and (packed / "baselines" / "width-0.5" / "last.pt").exists()
    assert (packed / "base" / "last.pt").exists() and (packed / "_vendor" / "torch_pruning" / "__init__.py").exists()
    other = time_on_device(packed, tmp_path / "torch-cpu", "cpu", threads=1, min_time_ms=5, passes=1)
    ours = pd.read_csv(run / "results.csv")
    assert list(other["network"]) == list(ours["network"]) and (other["accuracy"] == ours["accuracy"]).all()
    assert (other["latency_ms"] > 0).all() and (other["throughput_ips"] > 0).all() and (other["threads"] == 1).all()
    assert set(other["device"]) == {"cpu-torch"} and other["timed_at"].nunique() == 1
    assert other["predicted_latency_ms"].isna().all()  # the run's predictions are of its own device
    assert main(["report", str(run), str(tmp_path / "torch-cpu"), "--out", str(tmp_path / "both")]) == 0
    assert "2 measurement settings" in (tmp_path / "both" / "index.html").read_text()
    with pytest.raises(DepthshrinkError, match="another folder than a run"):
        time_on_device(packed, packed)
    with pytest.raises(DepthshrinkError, match="another folder than a run"):  # the finished run, written over
        time_on_device(packed, run)
    pd.read_csv(run / "results.csv").assign(network="dp-9x").to_csv(packed / "results.csv", index=False)
    with pytest.raises(DepthshrinkError, match="names networks its config.toml does not: dp-9x"):
        time_on_device(packed, tmp_path / "nothing")
    with pytest.raises(DepthshrinkError, match="holds no finished run"):
        pack(tmp_path / "missing", tmp_path / "nothing")


def test_base_weights_a_user_brings_are_trained_from_and_checkpoints_used_as_they_are(tmp_path, capsys):
    """``[train] weights``: a plain state_dict (e.g. ImageNet weights) is the start of base
    training on the run's data; a ``train`` checkpoint is the base itself."""
    import torch

    from depthshrink.models import build_model
    from depthshrink.pipeline.stages import Pipeline

    plain = build_model("tiny_mobilenet", in_channels=1, num_classes=10).state_dict()
    torch.save(plain, tmp_path / "plain.pt")
    settings = tomllib.loads(TINY)
    settings["train"].update(weights=str(tmp_path / "plain.pt"), lr=1e-9)  # the weights stay the user's
    pipeline = Pipeline(PipelineConfig.from_dict(settings), tmp_path / "run")
    pipeline.train_base()
    assert pipeline.base == tmp_path / "run" / "base" / "last.pt"
    trained = torch.load(pipeline.base, weights_only=True)["model"]
    assert all(torch.allclose(trained[k], v, atol=1e-6) for k, v in plain.items() if k.endswith("weight"))
    scratch = build_model("tiny_mobilenet", in_channels=1, num_classes=10).state_dict()  # another draw
    assert not all(torch.allclose(trained[k], v, atol=1e-3) for k, v in scratch.items() if k.endswith("weight"))

    settings["train"]["weights"] = str(pipeline.base)
    again = Pipeline(PipelineConfig.from_dict(settings), tmp_path / "again")
    again.train_base()
    assert again.base == pipeline.base and not (tmp_path / "again" / "base").exists()
    settings["train"]["weights"] = str(tmp_path / "none.pt")
    with pytest.raises(DepthshrinkError, match="none.pt does not exist"):
        Pipeline(PipelineConfig.from_dict(settings), tmp_path / "missing").train_base()
    capsys.readouterr()


def test_a_run_on_another_devices_lut_names_the_machine_it_measures_on(tmp_path):
    """With ``[profile] luts`` of another device (an H100's, say), the measure stage still times the
    networks here with ONNX Runtime: device.json named the LUT's device for those timings, and the
    results set the H100's predictions beside this CPU's measurements (the report's parity plot).
    And the search filtered the LUT by ``[profile] threads``, which a GPU table leaves empty: no rows."""
    import depthshrink
    from depthshrink.pipeline.networks import lut_predicts_this_machine
    from depthshrink.pipeline.stages import Pipeline
    from depthshrink.profiler.devices import cpu_label

    h100 = depthshrink.__path__[0] + "/lut/h100_torch_eager/mobilenet_v2_224_b1_torch_h100_tf32.csv"
    settings = tomllib.loads(TINY)
    settings["profile"] = {"luts": [h100]}
    pipeline = Pipeline(PipelineConfig.from_dict(settings), tmp_path / "run")
    (tmp_path / "run").mkdir()
    pipeline.profile()
    assert pipeline.lut_filters() == {}
    device = json.loads((tmp_path / "run" / "device.json").read_text())
    assert device["device"] == cpu_label() and device["backend"] == "onnxruntime"
    assert device["lut_device"] == "nvidia-h100-80gb-hbm3" and device["lut_backend"] == "torch"
    assert not lut_predicts_this_machine(device)
    assert lut_predicts_this_machine({**device, "lut_device": cpu_label(), "lut_backend": "onnxruntime"})
    assert lut_predicts_this_machine({"device": cpu_label(), "backend": "onnxruntime"})  # a run from before
    here = {**device, "lut_device": cpu_label(), "lut_backend": "onnxruntime", "threads": 1}
    assert lut_predicts_this_machine({**here, "lut_threads": 1})
    assert not lut_predicts_this_machine({**here, "lut_threads": 2})  # [profile] threads 2, [measure] threads 1


def test_a_gpu_is_named_by_its_label_for_the_other_devices_timings(monkeypatch):
    """time_on_device read ``target.slug``, which GpuTarget lacks: every GPU run crashed before timing."""
    import depthshrink.profiler.devices as devices
    from depthshrink.pipeline.other_device import device_of

    monkeypatch.setattr(devices, "_visible_gpus", lambda: [("NVIDIA H100 80GB HBM3", (9, 0))])
    label, torch_device = device_of("0")
    assert torch_device == "cuda:0" and label == devices.resolve_gpu("0").label and "h100" in label
    assert device_of("cpu") == ("cpu-torch", "cpu")


def test_the_shipped_base_serves_fashion_mnist_only(tmp_path):
    """Any 28x28 grey 10-class data took the Fashion-MNIST base (13.75% on synthetic data): now a base is
    trained on the run's own data."""
    from depthshrink.pipeline.runfolder import SHIPPED_BASE
    from depthshrink.pipeline.stages import Pipeline
    from depthshrink.training.data import FASHION_MNIST

    for source, shipped in (("synthetic", False), (str(tmp_path), False), ("fashion-mnist", True),
                            (str(FASHION_MNIST), True)):
        config = PipelineConfig.from_dict({"data": {"source": source}})
        pipeline = Pipeline(config, tmp_path / "run")
        if pipeline.config.data.source == "synthetic" and source == "fashion-mnist":
            continue  # Fashion-MNIST is not installed here: the run falls back to synthetic data
        assert (pipeline.weights == str(SHIPPED_BASE)) == shipped, source
        assert (pipeline.base == SHIPPED_BASE) == shipped


def test_a_base_checkpoint_of_another_model_is_refused_before_anything_runs(tmp_path):
    """[model] tiny_mobilenet with the shipped MobileNetV2 base as [train] weights profiled a LUT and scored
    33 segments (minutes), then failed at the search."""
    from depthshrink.pipeline.runfolder import SHIPPED_BASE
    from depthshrink.pipeline.stages import Pipeline

    settings = tomllib.loads(TINY)
    settings["train"]["weights"] = str(SHIPPED_BASE)
    (tmp_path / "run").mkdir()
    with pytest.raises(DepthshrinkError, match=r"checkpoint of another model: name mobilenet_v2_small "
                                               r"\(not tiny_mobilenet\), width_mult 0.5 \(not 1.0\)"):
        Pipeline(PipelineConfig.from_dict(settings), tmp_path / "run").train_base()
    demo = Pipeline(PipelineConfig.from_dict({}), tmp_path / "run")
    if demo.base == SHIPPED_BASE:  # Fashion-MNIST installed: the demo's own base, used as it is
        demo.train_base()

"""Every subcommand that reads a file, fed a truncated and a garbage copy of it: one line of our
own (two at most: the error and a hint), a non-zero exit, no traceback, and nothing written."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from depthshrink.cli.main import main

LUT_28 = Path(__file__).parents[2] / "lut" / "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv"
MODEL = ["--model", "mobilenet_v2_small", "--width-mult", "0.5", "--resolution", "28", "--in-channels", "1",
         "--num-classes", "10"]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """Valid files of every kind the commands read."""
    from depthshrink.contracts.files import write_json_atomic
    from depthshrink.contracts.masks import per_block_masks
    from depthshrink.contracts.space import ChainSpace
    from depthshrink.models import build_model
    from depthshrink.pipeline.config import PipelineConfig
    from depthshrink.search.segments import candidate_segments
    from depthshrink.shrink.apply import apply_masks
    from depthshrink.training.train import CHECKPOINT_FORMAT, save_checkpoint

    folder = tmp_path_factory.mktemp("good")
    files = {"space": folder / "space.json", "lut": folder / "lut.csv", "importance": folder / "importance.csv",
             "masks": folder / "masks.json", "checkpoint": folder / "base.pt", "finetuned": folder / "finetuned.pt",
             "config": folder / "pipeline.toml", "results": folder / "results.csv", "manifest": folder / "manifest.json",
             "state_dict": folder / "weights.pt"}
    assert main(["space", *MODEL, "--out", str(files["space"])]) == 0
    space = ChainSpace.from_json(files["space"])
    shutil.copy(LUT_28, files["lut"])
    rows = "".join(f"{a},{b},-0.1\n" for a, b in candidate_segments(space, 2))
    files["importance"].write_text("start,end,importance\n" + rows)
    masks = per_block_masks(space)
    masks.to_json(files["masks"])
    torch.manual_seed(0)
    model = build_model("mobilenet_v2_small", width_mult=0.5, in_channels=1, num_classes=10).eval()
    torch.save(model.state_dict(), files["state_dict"])
    base = {"format": CHECKPOINT_FORMAT, "epoch": 1, "model": model.state_dict(), "spec": {"model": space.model}}
    save_checkpoint(files["checkpoint"], base)
    shrunk = apply_masks(model, space, masks)
    save_checkpoint(files["finetuned"], {**base, "model": shrunk.state_dict(),
                                         "spec": {"model": space.model, "masks": masks.to_dict()}})
    files["config"].write_text(PipelineConfig().to_toml())
    files["results"].write_text("network,kind,accuracy,latency_ms\noriginal,original,0.9,0.5\n")
    write_json_atomic(files["manifest"], {"format": "depthshrink.bundle/1", "model": space.model,
                                          "model_label": "x", "batch_size": 1, "entries": []})
    return files


def _spoiled(source: Path, how: str, folder: Path, name: str | None = None) -> Path:
    """Half the file, or random bytes. A LUT is cut inside its header: one cut inside its rows is
    what a crash mid-append leaves, and the LUT's contract recovers it (the next test)."""
    data = source.read_bytes()
    half = 30 if source.suffix == ".csv" and source.name == "lut.csv" else len(data) // 2
    spoiled = data[:half] if how == "truncated" else random.Random(0).randbytes(600)
    path = folder / (name or source.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(spoiled)
    return path


# (command, the file kind it reads) -> arguments, given the spoiled file, the good files and an output folder
CASES = {
    "space --weights": ("state_dict", lambda bad, g, out: ["space", *MODEL, "--weights", bad, "--out", out / "s.json"]),
    "export-bundle --weights": ("state_dict", lambda bad, g, out: ["export-bundle", *MODEL, "--weights", bad,
                                                                   "--batch-size", "1", "--out", out / "bundle"]),
    "profile-device --bundle": ("manifest", lambda bad, g, out: ["profile-device", "--cpu", "--bundle", bad.parent,
                                                                 "--batch-size", "1", "--lut", out / "lut.csv"]),
    "profile-device --lut": ("lut", lambda bad, g, out: ["profile-device", "--cpu", *MODEL, "--batch-size", "1",
                                                         "--lut", bad, "--passes", "1", "--min-time-ms", "1"]),
    "lut merge": ("lut", lambda bad, g, out: ["lut", "merge", g["lut"], bad, "--out", out / "merged.csv"]),
    "predictor evaluate": ("lut", lambda bad, g, out: ["predictor", "evaluate", "--lut", bad]),
    "importance --weights": ("checkpoint", lambda bad, g, out: ["importance", "--weights", bad, "--data", "synthetic",
                                                                "--out", out / "imp.csv"]),
    "search --space": ("space", lambda bad, g, out: ["search", "--space", bad, "--lut", g["lut"], "--importance",
                                                     g["importance"], "--latency-budget", "1.2x",
                                                     "--out", out / "m.json"]),
    "search --lut": ("lut", lambda bad, g, out: ["search", "--space", g["space"], "--lut", bad, "--importance",
                                                 g["importance"], "--latency-budget", "1.2x", "--out", out / "m.json"]),
    "search --importance": ("importance", lambda bad, g, out: ["search", "--space", g["space"], "--lut", g["lut"],
                                                               "--importance", bad, "--latency-budget", "1.2x",
                                                               "--out", out / "m.json"]),
    "train --weights": ("state_dict", lambda bad, g, out: ["train", *MODEL, "--weights", bad, "--data", "synthetic",
                                                           "--out", out / "run", "--device", "cpu"]),
    "finetune --masks": ("masks", lambda bad, g, out: ["finetune", "--masks", bad, "--weights", g["checkpoint"],
                                                       "--data", "synthetic", "--out", out / "ft", "--device", "cpu"]),
    "finetune --weights": ("checkpoint", lambda bad, g, out: ["finetune", "--masks", g["masks"], "--weights", bad,
                                                              "--data", "synthetic", "--out", out / "ft"]),
    "merge --checkpoint": ("finetuned", lambda bad, g, out: ["merge", "--checkpoint", bad, "--out", out / "merged"]),
    "evaluate --checkpoint": ("checkpoint", lambda bad, g, out: ["evaluate", "--checkpoint", bad, "--data",
                                                                 "synthetic"]),
    "run --config": ("config", lambda bad, g, out: ["run", "--config", bad, "--out", out / "run"]),
    "report": ("results", lambda bad, g, out: ["report", bad.parent, "--out", out / "report"]),
}


@pytest.mark.parametrize("how", ["truncated", "garbage"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_spoiled_file_gets_one_line_and_nothing_is_written(good, tmp_path, capsys, case, how):
    kind, arguments = CASES[case]
    name = {"manifest": "manifest.json", "results": "results.csv"}.get(kind)
    bad = _spoiled(good[kind], how, tmp_path / "in", name)
    out = tmp_path / "out"
    out.mkdir()
    before = bad.read_bytes()
    capsys.readouterr()
    code = main([str(a) for a in arguments(bad, good, out)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0, captured.out
    assert 1 <= len(lines) <= 2 and lines[0].startswith(f"depthshrink {case.split()[0]}: error: "), captured.err
    assert "Traceback" not in captured.err
    assert list(out.iterdir()) == [], f"{case} wrote {list(out.iterdir())}"
    assert bad.read_bytes() == before  # an input is never "repaired" on the way to an error


def test_a_lut_cut_inside_its_rows_is_read_with_one_warning_and_left_as_it_is(good, tmp_path, capsys):
    data = good["lut"].read_bytes()
    cut = tmp_path / "lut.csv"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.warns(UserWarning, match="torn last line"):
        assert main(["predictor", "evaluate", "--lut", str(cut)]) == 0
    assert cut.read_bytes() == data[:len(data) // 2]  # reading never repairs; the next profiling session does


def test_a_factory_that_raises_is_one_line(capsys):
    assert main(["space", "--model", "json:dumps", "--resolution", "28", "--out", "/dev/null"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "json:dumps" in lines[0] and "Traceback" not in lines[0]


def test_a_model_that_fails_on_its_input_is_one_line(capsys):
    """torch's shape propagation printed the failing node's traceback (22 lines) before our line."""
    assert main(["space", "--model", "helpers:unpadded_net", "--resolution", "4", "--out", "/dev/null"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "fails on an input of shape (1, 3, 4, 4)" in lines[0], lines


class _Pickled:  # any Python object: weights_only refuses it
    pass


def test_a_checkpoint_holding_code_is_refused_in_our_words(tmp_path, capsys):
    path = tmp_path / "unsafe.pt"
    torch.save({"model": _Pickled()}, path)
    assert main(["evaluate", "--checkpoint", str(path), "--data", "synthetic"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"depthshrink evaluate: error: cannot read checkpoint {path}: it holds a Python object "
                     f"({_Pickled.__module__}._Pickled), which is refused: only tensors are loaded (save a state_dict with "
                     "torch.save(model.state_dict(), path))"]


@pytest.mark.parametrize("case", ["search --lut", "search --importance", "predictor evaluate", "lut merge"])
def test_a_folder_given_for_a_file_is_one_line(good, tmp_path, capsys, case):
    """``--lut lut/h100_torch_eager`` (the folder, not a table in it) ended in IsADirectoryError."""
    folder = tmp_path / "in"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    code = main([str(a) for a in CASES[case][1](folder, good, out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "is a folder" in lines[0], lines
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("case", ["search", "profile-device", "export-bundle --corpus"])
def test_model_options_beside_a_space_or_bundle_are_refused_not_ignored(good, tmp_path, capsys, case):
    """``search --space S --strided-merge any --resolution 224`` searched S as it was, silently."""
    out = tmp_path / "out"
    out.mkdir()
    extra = ["--strided-merge", "any", "--width-mult", "1.4"]
    if case == "search":
        arguments = ["search", "--space", good["space"], "--lut", good["lut"], "--importance", good["importance"],
                     "--latency-budget", "1.2x", "--out", out / "m.json", *extra]
    elif case == "export-bundle --corpus":  # exported a corpus, the options (a missing --weights too) unread
        arguments = ["export-bundle", "--corpus", "3", "--resolution", "16", "--batch-size", "1", "--out",
                     out / "corpus", *extra, "--weights", "nosuch.pt"]
    else:
        assert main(["export-bundle", *MODEL, "--batch-size", "1", "--out", str(tmp_path / "bundle")]) == 0
        arguments = ["profile-device", "--cpu", "--bundle", tmp_path / "bundle", "--batch-size", "1",
                     "--lut", out / "lut.csv", *extra]
    capsys.readouterr()
    assert main([str(a) for a in arguments]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--width-mult" in lines[0] and "--strided-merge" in lines[0], lines
    assert "describe a --model" in lines[0]
    assert list(out.iterdir()) == []


def test_a_space_lacking_a_field_is_one_line(good, tmp_path, capsys):
    """A hand-edited space.json whose site lacks "removable" ended in a KeyError traceback."""
    import json

    data = json.loads(good["space"].read_text())
    del data["sites"][0]["removable"]
    (tmp_path / "space.json").write_text(json.dumps(data))
    assert main(["search", "--space", str(tmp_path / "space.json"), "--lut", str(good["lut"]), "--importance",
                 str(good["importance"]), "--latency-budget", "1.2x", "--out", str(tmp_path / "m.json")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is not a complete chain space (KeyError: 'removable')" in lines[0], lines


@pytest.mark.parametrize("extra,said", [
    (["--cpu", "--no-cuda-graph"], "--no-cuda-graph is for GPUs"),
    (["--cpu", "--workspace-mb", "512", "--engine-cache", "x"], "--engine-cache is for GPUs; --workspace-mb is for GPUs"),
    (["--cpu", "--target-accuracy", "0.9"], "--target-accuracy needs --budget-fraction"),
    (["--cpu", "--noisy-spread", "-1"], "--noisy-spread -1.0 is out of range"),
    (["--cpu", "--warmup-ms", "-5"], "--warmup-ms -5.0 is out of range"),
    (["--cpu", "--min-time-ms", "inf"], "--min-time-ms inf is out of range"),  # timed each row forever
    (["--gpu", "0", "--threads", "4"], "--threads is for the CPU"),
    (["--gpu", "0", "--backend", "torch", "--workspace-mb", "512"], "--workspace-mb is for the tensorrt backend"),
    (["--gpu", "0", "--backend", "torch", "--engine-cache", "x"], "--engine-cache is for the tensorrt backend"),
])
def test_profile_device_options_that_would_be_ignored_are_one_line(tmp_path, capsys, extra, said):
    """Each was accepted and did nothing (a negative --noisy-spread flagged every row noisy and timed it twice)."""
    assert main(["profile-device", *MODEL, "--batch-size", "1", "--lut", str(tmp_path / "lut.csv"), *extra]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], lines
    assert not (tmp_path / "lut.csv").exists()


@pytest.mark.parametrize("out,frontier,said", [
    ("space", None, "--out {space} is the --space"), ("m.json", "importance", "--frontier {importance} is the --importance"),
    ("lut.validation.json", None, "--out {validation} is the validation of LUT 1"),
    ("m.json", "lut", "--frontier {lut} is the LUT 1")])
def test_search_refuses_to_write_over_what_it_reads(good, tmp_path, capsys, out, frontier, said):
    """``search --out space.json`` replaced the space with the masks, and ``--out LUT.validation.json``
    the table's validation networks: the next search read masks as a space, or ran uncorrected."""
    for name in ("space", "importance", "lut"):
        shutil.copy(good[name], tmp_path / good[name].name)
    shutil.copy(LUT_28.with_suffix(".validation.json"), tmp_path / "lut.validation.json")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    path = {name: tmp_path / good[name].name for name in ("space", "importance", "lut")}
    out = path.get(out, tmp_path / out)
    arguments = ["search", "--space", path["space"], "--lut", path["lut"], "--importance", path["importance"],
                 "--latency-budget", "1.2x", "--out", out] + (["--frontier", path[frontier]] if frontier else [])
    capsys.readouterr()
    assert main([str(a) for a in arguments]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    said = said.format(**path, validation=tmp_path / "lut.validation.json")
    assert len(lines) == 1 and f"{said} this command reads" in lines[0], lines
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_importance_refuses_to_write_its_scores_over_the_base_checkpoint(good, tmp_path, capsys):
    base = tmp_path / "base.pt"
    shutil.copy(good["checkpoint"], base)
    before = base.read_bytes()
    assert main(["importance", "--weights", str(base), "--data", "synthetic", "--out", str(base)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--out {base} is the --weights" in lines[0], lines
    assert base.read_bytes() == before


@pytest.mark.parametrize("garble,said", [
    (lambda d: d["layers"][0].pop("padding"), "KeyError: 'padding'"),  # was read as padding 0: inf in the predictor
    (lambda d: d["layers"][0].update(kernel_size="3"), "kernel_size must be whole numbers"),
    (lambda d: d["layers"][0].update(stride=0), "stride must be whole numbers"),
    (lambda d: d.update(residual_blocks=[[1, 2, 3]]), "ValueError: too many values to unpack"),
    (lambda d: d.update(model=None), "its model must be an object"),
    (lambda d: d["model"].pop("in_channels"), "its model must be an object with whole in_channels"),
])
def test_a_garbled_space_is_one_line(good, tmp_path, capsys, garble, said):
    """Each ended in a traceback (or, without padding, a search on wrong shapes)."""
    import json

    data = json.loads(good["space"].read_text())
    garble(data)
    (tmp_path / "space.json").write_text(json.dumps(data))
    assert main(["search", "--space", str(tmp_path / "space.json"), "--lut", str(good["lut"]), "--importance",
                 str(good["importance"]), "--latency-budget", "1.2x", "--out", str(tmp_path / "m.json")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is not a complete chain space" in lines[0] and said in lines[0], lines


def test_masks_whose_model_is_no_object_are_one_line(good, tmp_path, capsys):
    import json

    data = json.loads(good["masks"].read_text())
    data["model"] = [1, 2]
    (tmp_path / "masks.json").write_text(json.dumps(data))
    assert main(["finetune", "--masks", str(tmp_path / "masks.json"), "--weights", str(good["checkpoint"]),
                 "--data", "synthetic", "--out", str(tmp_path / "ft")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "its model must be an object, not list" in lines[0], lines


def test_search_refuses_to_write_its_masks_over_the_weights_it_loads(good, tmp_path, capsys):
    weights = tmp_path / "w.pt"
    shutil.copy(good["state_dict"], weights)
    before = weights.read_bytes()
    assert main(["search", *MODEL, "--weights", str(weights), "--lut", str(good["lut"]), "--importance",
                 str(good["importance"]), "--latency-budget", "1.2x", "--out", str(weights)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--out {weights} is the --weights this command reads" in lines[0], lines
    assert weights.read_bytes() == before

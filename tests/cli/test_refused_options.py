"""Options a command would ignore or fail on late: refused at once, in one line (issue review of
2026-12-06: each failed with a traceback, after minutes of work, or silently did nothing)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.search.budget import parse_budget

ROOT = Path(__file__).parents[2]
BASE = ROOT / "weights" / "mobilenet_v2_small_x0.5_fashion_mnist.pt"
LUT_28 = ROOT / "lut" / "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv"
MODEL = ["--model", "mobilenet_v2_small", "--width-mult", "0.5", "--resolution", "28", "--in-channels", "1",
         "--num-classes", "10"]


def _refused(args: list[str], capsys, message: str) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_importance_into_a_folder_is_refused_before_scoring(tmp_path, capsys):
    out = tmp_path / "scores"
    out.mkdir()
    _refused(["importance", "--weights", str(BASE), "--out", str(out)], capsys, "it is a folder")
    assert not (tmp_path / "scores.parts").exists()  # nothing scored, nothing left beside it


@pytest.mark.parametrize("command", [
    ["train", *MODEL, "--data", "synthetic", "--subset", "64"],
    ["finetune", "--masks", "MASKS", "--weights", str(BASE), "--data", "synthetic", "--subset", "64"],
    ["run"],
])
def test_a_run_into_a_file_is_refused(command, tmp_path, capsys):
    taken = tmp_path / "afile"
    taken.write_text("mine")
    command = [str(tmp_path / "m.json") if part == "MASKS" else part for part in command]
    if "finetune" in command:
        assert main(["space", *MODEL, "--out", str(tmp_path / "space.json")]) == 0
        from depthshrink.contracts.masks import per_block_masks
        from depthshrink.contracts.space import ChainSpace
        per_block_masks(ChainSpace.from_json(tmp_path / "space.json")).to_json(tmp_path / "m.json")
        capsys.readouterr()
    _refused([*command, "--out", str(taken)], capsys, "it is a file, not a folder")
    assert taken.read_text() == "mine"


def test_an_unknown_training_device_is_refused(tmp_path, capsys):
    _refused(["train", *MODEL, "--data", "synthetic", "--subset", "64", "--epochs", "1", "--device", "foo",
              "--out", str(tmp_path / "t")], capsys, "give auto, cpu, cuda or cuda:N")


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999", "4294967296"])
def test_seeds_torch_or_numpy_would_refuse_are_refused_by_the_parser(seed, tmp_path, capsys):
    for command in (["train", *MODEL], ["importance", "--weights", str(BASE)]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--seed", seed, "--out", str(tmp_path / "x")])
        assert exit_.value.code == 2 and "an integer from 0 to 4294967295" in capsys.readouterr().err


def test_seeds_and_weight_decay_are_checked_by_the_api_too():
    from depthshrink.training.scoring import ImportanceOptions
    from depthshrink.training.train import TrainConfig

    for bad in (dict(seed=-1), dict(seed=2**32), dict(weight_decay=math.inf)):
        with pytest.raises(DepthshrinkError):
            TrainConfig(**bad)
    with pytest.raises(DepthshrinkError, match="seed"):
        ImportanceOptions(seed=-1)
    assert TrainConfig(seed=2**32 - 1).seed == 2**32 - 1


@pytest.mark.parametrize("method, options, named", [
    ("zero-shot", ["--keep", "3", "--epochs", "5"], "--epochs, --keep: not used by --method zero-shot"),
    ("zero-shot", ["--distill", "0.5"], "--distill: not used"),
    ("probe", ["--keep", "3"], "--keep: not used by --method probe"),
    ("masks", ["--max-removed", "1", "--probe-lr", "0.1"], "--max-removed, --probe-lr: not used by --method masks"),
])
def test_importance_options_its_method_does_not_use_are_refused(method, options, named, tmp_path, capsys):
    _refused(["importance", "--method", method, "--weights", str(BASE), *options, "--out", str(tmp_path / "i.csv")],
             capsys, named)
    assert not (tmp_path / "i.csv").exists()


def test_verify_rounds_without_verify_and_threads_without_measuring_are_refused(tmp_path, capsys):
    _refused(["search", *MODEL, "--lut", str(LUT_28), "--importance", str(tmp_path / "none.csv"),
              "--latency-budget", "1.3x", "--verify-rounds", "2", "--out", str(tmp_path / "m.json")],
             capsys, "give --verify too")
    _refused(["merge", "--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "mg"), "--no-measure",
              "--threads", "4"], capsys, "not with --no-measure")


def test_a_model_reference_without_a_module_is_refused(tmp_path, capsys):
    for reference in (":x", ".foo:x", "depthshrink.models:"):
        _refused(["space", "--model", reference, "--resolution", "28", "--out", str(tmp_path / "s.json")], capsys,
                 "write an absolute package.module:factory")


def test_a_budget_beyond_any_network_is_refused():
    for text in ("1e300ms", "1e308s", "1e400ms", "2e9x"):
        with pytest.raises(DepthshrinkError, match="too large"):
            parse_budget(text)
    assert parse_budget("1e9ms").latency_ms == 1e9


def test_the_folds_printed_are_the_folds_used():
    from depthshrink.lut.predictor import fold_count

    frame = pd.read_csv(LUT_28)
    shapes = fold_count(frame, 10_000)
    assert 100 < shapes < 152 and fold_count(frame, 5) == 5  # one fold a shape at most: near-duplicates go together


def test_a_factory_in_the_working_folder_is_found_as_python_m_finds_it(tmp_path, monkeypatch, capsys):
    """The console script does not put the working folder on the path (``python -m`` does): a
    user's ``mynet.py`` beside them was "No module named 'mynet'"."""
    (tmp_path / "depthshrink_user_net.py").write_text(
        "from depthshrink.models import build_model\n\n"
        "def build(**options):\n"
        "    return build_model('tiny_mobilenet', **options)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    (tmp_path / "depthshrink_user_net2.py").write_text("import depthshrink_missing_dependency\n")
    _refused(["space", "--model", "depthshrink_user_net2:build", "--resolution", "32", "--out", "t.json"], capsys,
             "No module named 'depthshrink_missing_dependency'")  # what the user's file lacks, not the file
    assert main(["space", "--model", "depthshrink_user_net:build", "--resolution", "32",
                 "--out", str(tmp_path / "s.json")]) == 0, capsys.readouterr().err
    assert (tmp_path / "s.json").exists()
    _refused(["space", "--model", "depthshrink_no_such_net:build", "--resolution", "32", "--out", "t.json"], capsys,
             "No module named 'depthshrink_no_such_net'")

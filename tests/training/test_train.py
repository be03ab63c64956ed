"""The training loop: DDP over gloo equals one process, resume equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TinyNet, torchrun, write_idx

from depthshrink import DepthshrinkError
from depthshrink.training.data import synthetic
from depthshrink.training.train import TrainConfig, load_checkpoint, train

CONFIG = TrainConfig(epochs=2, batch_size=16, lr=0.1)
TESTS = Path(__file__).parents[1]  # helpers.py, for the torchrun scripts

DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from helpers import TinyNet
from depthshrink.training.data import synthetic
from depthshrink.training.train import TrainConfig, train
import torch.distributed as dist
# resume: a launch that helpers.torchrun retries (a socket error at exit) continues what the first one wrote
model = train(TinyNet(), synthetic(96, seed=1), TrainConfig(epochs=2, batch_size=16, lr=0.1), {out!r}, progress=False,
              device="cpu", resume=True)
torch.save(model.state_dict(), {out!r} + f"/rank{{dist.get_rank()}}.pt")
dist.destroy_process_group()  # exiting with it alive can abort in gloo's threads
"""


def test_two_gloo_processes_equal_one(tmp_path):
    single = train(TinyNet(), synthetic(96, seed=1), CONFIG, tmp_path / "one", progress=False, device="cpu").state_dict()
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(TESTS), out=str(tmp_path / "two")))
    torchrun([str(script)])
    ranks = [torch.load(tmp_path / "two" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key])
        assert torch.allclose(ranks[0][key], value, atol=1e-6), key
    assert any(not torch.equal(value, TinyNet().state_dict()[key]) for key, value in single.items())


KILL_SCRIPT = """
import sys, torch
torch.set_num_threads({threads})  # the same reduction order as the uninterrupted run
sys.path.insert(0, {tests!r})
from helpers import TinyNet
from depthshrink.training.data import synthetic
from depthshrink.training.train import TrainConfig, train
train(TinyNet(), synthetic(20000, seed=2), TrainConfig(epochs=3, batch_size=64, lr=0.05), {out!r}, progress=False, device="cpu")
"""


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path):
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05)
    data = synthetic(20000, seed=2)
    reference = train(TinyNet(), data, config, tmp_path / "whole", progress=False, device="cpu").state_dict()
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT.format(tests=str(TESTS), out=str(tmp_path / "killed"),
                                         threads=torch.get_num_threads()))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics, checkpoint = tmp_path / "killed" / "metrics.jsonl", tmp_path / "killed" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.exists():  # epoch 1 is saved
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] < 3
    resumed = train(TinyNet(), data, config, tmp_path / "killed", resume=True, progress=False, device="cpu").state_dict()
    for key, value in reference.items():
        assert torch.allclose(resumed[key], value, atol=1e-7), key
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == [1, 2, 3]  # one line per epoch: resumed, not retrained from scratch


def test_corrupt_checkpoint_is_refused(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DepthshrinkError, match="cannot read checkpoint"):
        train(TinyNet(), synthetic(64), CONFIG, tmp_path, resume=True, progress=False, device="cpu")
    with pytest.raises(DepthshrinkError, match="does not split among"):
        from depthshrink.training.ranks import GlobalBatchSampler
        GlobalBatchSampler(100, 15, 0, rank=0, world=2)


def test_training_starts_from_weights_of_another_dataset(tmp_path, capsys):
    """ImageNet-style weights (RGB stem, 1000 classes) for a one-channel, ten-class model: the stem
    is summed over colours, the classifier is new; anything else must still fit exactly."""
    from depthshrink.cli.main import main
    from depthshrink.models import build_model

    rgb = build_model("mobilenet_v2", width_mult=0.35).state_dict()
    torch.save(rgb, tmp_path / "imagenet.pt")
    common = ["--model", "mobilenet_v2_small", "--width-mult", "0.35", "--resolution", "28", "--in-channels", "1",
              "--num-classes", "10", "--data", "synthetic", "--subset", "64", "--epochs", "1", "--batch-size", "32",
              "--lr", "1e-9",
              "--no-progress", "--device", "cpu"]
    assert main(["train", *common, "--weights", str(tmp_path / "imagenet.pt"), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "RGB weights summed over colours" in err and "classifier has 1000 outputs, not 10" in err
    trained = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert torch.allclose(trained["features.0.0.weight"], rgb["features.0.0.weight"].sum(1, keepdim=True), atol=1e-5)
    assert torch.allclose(trained["features.5.conv.1.0.weight"], rgb["features.5.conv.1.0.weight"], atol=1e-5)
    torch.save(build_model("mobilenet_v2", width_mult=0.5).state_dict(), tmp_path / "wider.pt")
    assert main(["train", *common, "--weights", str(tmp_path / "wider.pt"), "--out", str(tmp_path / "bad")]) == 1
    assert "do not fit this model" in capsys.readouterr().err


def test_train_and_evaluate_commands(tmp_path, capsys):
    from depthshrink.cli.main import main

    common = ["--model", "tiny_mobilenet", "--resolution", "28", "--in-channels", "1", "--data", "synthetic"]
    assert main(["train", *common, "--num-classes", "10", "--subset", "512", "--epochs", "1", "--batch-size", "64",
                 "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 1 and state["spec"]["model"]["name"] == "tiny_mobilenet"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--data", "synthetic"]) == 0
    assert "top-1" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # --subset draws training images: on the test split it was ignored
        main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--data", "synthetic", "--subset", "9"])
    assert "unrecognized arguments: --subset 9" in capsys.readouterr().err
    assert main(["train", *common, "--num-classes", "5", "--subset", "64", "--out", str(tmp_path / "bad")]) == 1
    assert "the data has 10 classes but the model has 5 outputs" in capsys.readouterr().err
    assert main(["train", *common[:-1], str(tmp_path / "nowhere"), "--out", str(tmp_path / "bad")]) == 1
    assert "nowhere does not exist" in capsys.readouterr().err
    (tmp_path / "broken.pt").write_bytes(b"junk")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "broken.pt"), "--data", "synthetic"]) == 1


def test_train_finetune_merge_evaluate_chain(tmp_path, capsys):
    """The merged model predicts what the finetuned checkpoint predicts (>= 99.9% of test images)."""
    from depthshrink.cli.main import main
    from depthshrink.contracts.masks import per_block_masks
    from depthshrink.shrink.rebuild import build_from_spec, load_merged, network_from_checkpoint
    from depthshrink.training.data import synthetic
    from depthshrink.training.evaluate import accuracy

    data = ["--data", "synthetic", "--subset", "512", "--no-progress", "--device", "cpu"]
    assert main(["train", "--model", "tiny_mobilenet", "--resolution", "28", "--in-channels", "1",
                 "--num-classes", "10", "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "base"),
                 *data]) == 0
    base = load_checkpoint(tmp_path / "base" / "last.pt")
    _, space = build_from_spec(base["spec"]["model"])
    masks = per_block_masks(space)
    first = masks.segments[1][1]  # the first two blocks keep their activations, the rest are merged
    masks.kept_activations = [s.position for s in space.sites if s.activation and s.position < first]
    masks.segments = [(p, p + 1) for p in range(first)] + [s for s in masks.segments if s[0] >= first]
    masks.to_json(tmp_path / "masks.json")
    assert main(["finetune", "--masks", str(tmp_path / "masks.json"), "--weights", str(tmp_path / "base" / "last.pt"),
                 "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "ft"), *data]) == 0
    assert main(["merge", "--checkpoint", str(tmp_path / "ft" / "last.pt"), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "merged.onnx").exists()
    report = json.loads((tmp_path / "merged" / "merge_report.json").read_text())  # "before" was the shrunk one
    assert report["original"]["parameters"] == sum(p.numel() for p in build_from_spec(base["spec"]["model"])[0].parameters())
    assert report["merged"]["flops"] < report["original"]["flops"] and report["shrunk"]["latency_ms"] > 0
    assert main(["merge", "--checkpoint", str(tmp_path / "ft" / "last.pt"), "--out", str(tmp_path / "merged"),
                 "--no-measure"]) == 0  # the earlier report stayed beside the new network
    assert not (tmp_path / "merged" / "merge_report.json").exists()
    finetuned = network_from_checkpoint(load_checkpoint(tmp_path / "ft" / "last.pt"), "ft")
    merged = load_merged(tmp_path / "merged")
    test = synthetic(2000, (1, 28, 28), seed=1)
    images = test.tensors[0]
    with torch.no_grad():
        same = (finetuned(images).argmax(1) == merged(images).argmax(1)).float().mean().item()
    assert same >= 0.999 and accuracy(finetuned, test) == pytest.approx(accuracy(merged, test), abs=1e-3)
    from depthshrink.profiler.onnxruntime import run_session, session_from_onnx

    deployed = session_from_onnx(tmp_path / "merged" / "merged.onnx")  # exported at batch 2, it ran only so
    for batch in (1, 5):
        with torch.no_grad():
            expected = merged(images[:batch]).numpy()
        assert np.allclose(run_session(deployed, images[:batch].numpy()), expected, rtol=1e-4, atol=1e-4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in merged.modules()) == len(masks.segments) + 2
    capsys.readouterr()
    assert main(["merge", "--checkpoint", str(tmp_path / "base" / "last.pt"), "--out", str(tmp_path / "m2")]) == 1
    assert "merge takes a finetune checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "--merged", str(tmp_path / "merged"), "--data", "synthetic"]) == 0


BN_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from depthshrink.models import build_model
from depthshrink.training.data import synthetic
from depthshrink.training.train import TrainConfig, train
import torch.distributed as dist
torch.manual_seed(0)
model = build_model("tiny_mobilenet", in_channels=1)
train(model, synthetic(64, seed=3), TrainConfig(epochs=1, batch_size=16, lr=0.1), {out!r}, progress=False, device="cpu",
      resume=True)  # as DDP_SCRIPT
torch.save(model.state_dict(), {out!r} + f"/rank{{dist.get_rank()}}.pt")
dist.destroy_process_group()  # exiting with it alive can abort in gloo's threads
"""


def test_ranks_agree_on_a_network_with_batchnorm(tmp_path):
    """BN statistics are per process on the CPU, but every rank ends with the same weights and buffers."""
    script = tmp_path / "bn.py"
    script.write_text(BN_SCRIPT.format(tests=str(TESTS), out=str(tmp_path)))
    torchrun([str(script)])
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])


def test_resume_refuses_another_run(tmp_path):
    train(TinyNet(), synthetic(64), CONFIG, tmp_path, progress=False, device="cpu")
    before = (tmp_path / "last.pt").read_bytes()  # a second run without --resume replaced it after one epoch
    with pytest.raises(DepthshrinkError, match="holds a run already"):
        train(TinyNet(), synthetic(64), CONFIG, tmp_path, progress=False, device="cpu")
    assert (tmp_path / "last.pt").read_bytes() == before and (tmp_path / "metrics.jsonl").exists()
    other = TrainConfig(epochs=3, batch_size=16, lr=0.1)
    with pytest.raises(DepthshrinkError, match="other settings or another model"):
        train(TinyNet(), synthetic(64), other, tmp_path, resume=True, progress=False, device="cpu")
    # other data: its steps per epoch would have stretched the schedule resumed (lr left at 0.05, not 0)
    with pytest.raises(DepthshrinkError, match="trained on 64 examples, this run has 32"):
        train(TinyNet(), synthetic(32), CONFIG, tmp_path, resume=True, progress=False, device="cpu")
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "lo')  # a line torn by a kill
    train(TinyNet(), synthetic(64), CONFIG, tmp_path, resume=True, progress=False, device="cpu")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DepthshrinkError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "empty.pt")


def test_ema_weights_are_averaged_saved_and_resumed(tmp_path, monkeypatch):
    import shutil

    import depthshrink.training.train as training

    saved = training.save_checkpoint

    def keep_epoch_one(path, state):  # what a run killed after epoch 1 leaves behind
        saved(path, state)
        if state["epoch"] == 1:
            (tmp_path / "killed").mkdir()
            shutil.copy(path, tmp_path / "killed" / "last.pt")

    monkeypatch.setattr(training, "save_checkpoint", keep_epoch_one)
    config = TrainConfig(epochs=2, batch_size=16, lr=0.1, ema_decay=0.9)
    data = synthetic(96, seed=1)
    whole = train(TinyNet(), data, config, tmp_path / "whole", progress=False, device="cpu")
    state = load_checkpoint(tmp_path / "whole" / "last.pt")
    assert state["ema_updates"] == 12  # 6 steps per epoch
    for key, value in whole.state_dict().items():  # the returned model carries the average
        assert torch.equal(value, state["ema"][key])
    assert any(not torch.allclose(state["model"][k], state["ema"][k]) for k in state["model"])
    monkeypatch.setattr(training, "save_checkpoint", saved)
    resumed = train(TinyNet(), data, config, tmp_path / "killed", resume=True, progress=False, device="cpu")
    for key, value in whole.state_dict().items():
        assert torch.allclose(resumed.state_dict()[key], value, atol=1e-7), key
    with pytest.raises(DepthshrinkError, match="EMA decay"):
        train(TinyNet(), data, TrainConfig(epochs=1, batch_size=16, ema_decay=1.5), tmp_path / "bad", progress=False,
              device="cpu")


def test_training_leaves_the_callers_teacher_and_model_types_as_they_were(tmp_path):
    """The work runs on copies on the training device: the teacher is read, never put in eval mode
    or moved (on a GPU it was moved, and the student's BatchNorms swapped for SyncBatchNorm, in place)."""
    from depthshrink.models import build_model

    torch.manual_seed(0)
    student, teacher = build_model("tiny_mobilenet", in_channels=1, num_classes=10), TinyNet()
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    data = synthetic(64, seed=3)
    trained = train(student, data, TrainConfig(epochs=1, batch_size=16, lr=0.1, distill_weight=0.5), tmp_path,
                    teacher=_Adapter(teacher), progress=False, device="cpu")
    assert trained is student and teacher.training
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert {type(m) for m in student.modules()} == {type(m) for m in build_model("tiny_mobilenet").modules()}
    assert all(p.is_contiguous() for p in student.parameters())


class _Adapter(torch.nn.Module):
    """TinyNet as a teacher of the 10-class tiny_mobilenet (same output size)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def test_seeds_draw_independent_streams():
    """The shuffle was seeded with seed + epoch and each rank's generator with seed + rank: seed 1
    trained on seed 0's data order one epoch later, and rank 1 of seed 0 drew rank 0 of seed 1's
    augmentation, so the bench's seeds overlapped."""
    from depthshrink.training.ranks import GlobalBatchSampler, stream_seed

    def order(seed: int, epoch: int) -> list:
        sampler = GlobalBatchSampler(64, 8, seed)
        sampler.epoch = epoch
        return list(sampler)

    assert order(0, 1) != order(1, 0) and order(0, 2) != order(2, 0)
    assert order(3, 1) == order(3, 1)  # still a function of (seed, epoch) alone: every rank agrees
    assert stream_seed(0, "rank", 1) != stream_seed(1, "rank", 0)
    assert len({stream_seed(s, "rank", r) for s in range(4) for r in range(4)}) == 16


def test_finetune_traces_the_base_as_the_masks_space_was_traced(tmp_path, capsys):
    """Masks searched on a space traced with --strided-merge any (or other --stem/--head-convs) were
    refused for every base trained with the defaults: finetune retraced the base its own way."""
    from depthshrink.cli.main import main
    from depthshrink.contracts.masks import Masks
    from depthshrink.shrink.rebuild import build_from_spec

    data = ["--data", "synthetic", "--subset", "256", "--no-progress", "--device", "cpu"]
    assert main(["train", "--model", "tiny_mobilenet", "--resolution", "28", "--in-channels", "1",
                 "--num-classes", "10", "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "base"),
                 *data]) == 0
    base = load_checkpoint(tmp_path / "base" / "last.pt")
    _, pointwise = build_from_spec(base["spec"]["model"])
    _, anywhere = build_from_spec({**base["spec"]["model"], "strided_merge": "any"})
    span = next(s for s in anywhere.spans if s not in pointwise.spans and s[1] - s[0] > 1)
    inside = {p for p in range(span[0] + 1, span[1])}
    kept = [s.position for s in anywhere.sites if s.activation and s.position not in inside]
    segments = [(p, p + 1) for p in range(span[0])] + [span] + [(p, p + 1) for p in range(span[1], anywhere.num_layers)]
    Masks(kept, segments, model=anywhere.model).to_json(tmp_path / "masks.json")
    capsys.readouterr()
    assert main(["finetune", "--masks", str(tmp_path / "masks.json"), "--weights", str(tmp_path / "base" / "last.pt"),
                 "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "ft"), *data]) == 0, \
        capsys.readouterr().err
    assert main(["merge", "--checkpoint", str(tmp_path / "ft" / "last.pt"), "--out", str(tmp_path / "merged")]) == 0


@pytest.mark.parametrize("option,value", [("--label-smoothing", "1.5"), ("--weight-decay", "-1"), ("--lr", "nan"),
                                          ("--ema-decay", "1")])
def test_training_settings_out_of_range_are_one_line(tmp_path, capsys, option, value):
    """--label-smoothing 1.5 failed in torch after the first batch, --weight-decay -1 in the optimizer:
    tracebacks; --lr nan trained to nothing."""
    from depthshrink.cli.main import main

    try:
        code = main(["train", "--model", "tiny_mobilenet", "--resolution", "28", "--in-channels", "1", "--num-classes",
                     "10", "--data", "synthetic", "--subset", "64", "--epochs", "1", "--batch-size", "16", "--device",
                     "cpu", "--no-progress", option, value, "--out", str(tmp_path / "run")])
    except SystemExit as exc:  # argparse's own refusal of a value it reads (after its usage lines)
        code = exc.code
    assert code in (1, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and option.lstrip("-").split("-")[0] in err[-1].lower()
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_rank_the_saved_run_lacked_keeps_its_own_random_stream():
    """Resumed on more processes than saved, rank 1 took rank 0's generator state: both drew the same numbers."""
    from depthshrink.training.ranks import stream_seed
    from depthshrink.training.train import restore_generators

    cpu = torch.device("cpu")
    torch.manual_seed(123)
    saved = [{"cpu": torch.get_rng_state()}]  # a one-process run's checkpoint
    rank_0 = torch.rand(4)
    torch.manual_seed(stream_seed(0, "rank", 1))  # as _train seeds rank 1 before resuming
    restore_generators(saved, 1, cpu)
    assert not torch.equal(torch.rand(4), rank_0)
    restore_generators(saved, 0, cpu)
    assert torch.equal(torch.rand(4), rank_0)


def test_a_run_resumes_whichever_way_its_starting_checkpoint_is_spelled(tmp_path, monkeypatch):
    """``depthshrink run --out run`` killed, then ``--out /abs/run``: the spec held the base's path as typed,
    and the resume was refused as "a run with other settings"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.pt").write_bytes(b"")
    train(TinyNet(), synthetic(64), CONFIG, tmp_path / "ft", progress=False, device="cpu",
          spec={"model": {"name": "tiny"}, "weights": "./base.pt"})
    for spelled in ("base.pt", str(tmp_path / "base.pt")):
        train(TinyNet(), synthetic(64), CONFIG, tmp_path / "ft", resume=True, progress=False, device="cpu",
              spec={"model": {"name": "tiny"}, "weights": spelled})
    (tmp_path / "other.pt").write_bytes(b"")
    with pytest.raises(DepthshrinkError, match="other settings or another model"):
        train(TinyNet(), synthetic(64), CONFIG, tmp_path / "ft", resume=True, progress=False, device="cpu",
              spec={"model": {"name": "tiny"}, "weights": "other.pt"})


def test_train_under_torchrun_prints_its_result_once(tmp_path):
    """Every rank printed "trained ... held-out accuracy": two lines for one run."""
    result = torchrun(["-m", "depthshrink.cli.main", "train", "--model", "tiny_mobilenet", "--resolution", "28",
                       "--in-channels", "1", "--num-classes", "10",
                       "--data", "synthetic", "--subset", "256", "--epochs", "1", "--batch-size", "32", "--device",
                       "cpu", "--no-progress", "--out", str(tmp_path / "run")])
    assert result.stdout.count("trained tiny_mobilenet for 1 epoch(s)") == 1, result.stdout


def test_resume_refuses_other_data_of_the_same_size(tmp_path):
    """A checkpoint recorded how many examples it was trained on, not which: a run resumed on another
    folder of as many images continued silently on other data."""
    from depthshrink.models.build import ModelSpec
    from depthshrink.training.data import DataSpec
    from depthshrink.training.runs import RunOptions, train_network

    for name, seed in (("a", 0), ("b", 1)):
        folder = tmp_path / name
        folder.mkdir()
        rng = np.random.default_rng(seed)
        write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (40, 16, 16)), False)
        write_idx(folder / "train-labels-idx1-ubyte", np.arange(40) % 10, False)
    model = ModelSpec("tiny_mobilenet", 16, in_channels=1, num_classes=10)
    config = TrainConfig(epochs=1, batch_size=12, lr=0.05)
    train_network(model, DataSpec(str(tmp_path / "a")), config, RunOptions(tmp_path / "run", progress=False))
    with pytest.raises(DepthshrinkError, match=r"trained on .*/a, this run has .*/b: resume with the same --data"):
        train_network(model, DataSpec(str(tmp_path / "b")), config, RunOptions(tmp_path / "run", resume=True,
                                                                               progress=False))
    same = DataSpec(str(tmp_path / "b" / ".." / "a"))  # the same folder, spelled otherwise
    train_network(model, same, config, RunOptions(tmp_path / "run", resume=True, progress=False))


def test_distillation_weighs_soft_and_hard_targets_to_one():
    import math

    from depthshrink.training.train import distillation_loss

    logits, teacher, labels = torch.tensor([[math.log(3.0), 0.0]]), torch.zeros(1, 2), torch.tensor([0])
    hard, soft = -math.log(0.75), -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    loss = distillation_loss(logits, labels, teacher, TrainConfig(distill_weight=0.5, label_smoothing=0.0))
    assert float(loss) == pytest.approx(0.5 * soft + 0.5 * hard)  # 0.56233


def test_the_cosine_schedule_spans_every_epoch(tmp_path):
    train(TinyNet(), synthetic(32, seed=1), TrainConfig(epochs=2, batch_size=16, lr=0.1), tmp_path,
          progress=False, device="cpu")
    rates = [json.loads(line)["lr"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rates[0] == pytest.approx(0.05) and rates[1] == pytest.approx(0.0, abs=1e-12)


def test_a_checkpoint_written_before_runs_recorded_their_data_resumes(tmp_path):
    """Older checkpoints name no data: they resume as before (only the data's size is compared)."""
    from depthshrink.models.build import ModelSpec
    from depthshrink.training.data import DataSpec
    from depthshrink.training.runs import RunOptions, train_network
    from depthshrink.training.train import save_checkpoint

    folder = tmp_path / "a"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.random.default_rng(0).integers(0, 256, (40, 16, 16)))
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(40) % 10)
    model = ModelSpec("tiny_mobilenet", 16, in_channels=1, num_classes=10)
    config = TrainConfig(epochs=2, batch_size=12, lr=0.05)
    run = tmp_path / "run"
    train_network(model, DataSpec(str(folder)), config, RunOptions(run, progress=False))
    state = load_checkpoint(run / "last.pt")
    del state["spec"]["data"]
    save_checkpoint(run / "last.pt", state)
    train_network(model, DataSpec(str(folder)), config, RunOptions(run, resume=True, progress=False))
    assert load_checkpoint(run / "last.pt")["epoch"] == 2

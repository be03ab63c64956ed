"""On a CUDA GPU (skipped elsewhere): profiling end to end, training and finetuning, DDP over NCCL
with one process, and merging a model that lives on the GPU. ``bench/gpu_check.sh`` runs these."""

import json
from pathlib import Path

import pytest
import torch
from helpers import TinyNet, torchrun

from depthshrink.cli.main import main
from depthshrink.lut.table import read_lut

pytestmark = pytest.mark.cuda
TESTS = Path(__file__).parent


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_profile_device_on_the_gpu_end_to_end(tmp_path, precision, capsys):
    lut = tmp_path / "lut.csv"
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32)
    assert main(["profile-device", "--gpu", "0", "--backend", "torch", "--precision", precision,
                 "--model", "tiny_mobilenet", "--resolution", "32", "--batch-size", "2", "--lut", str(lut),
                 "--validate", "--passes", "2", "--warmup-ms", "20", "--min-time-ms", "20", "--no-progress"]) == 0
    frame = read_lut(lut)
    assert set(frame["timing_method"]) == {"cuda-graph"} and set(frame["layout"]) == {"nhwc"}
    assert set(frame["precision"]) == {precision} and (frame["latency_ms"] > 0).all()
    validation = json.loads(lut.with_suffix(".validation.json").read_text())
    assert [r["network"] for r in validation] == ["original", "merged_blocks"]
    assert all(r["timed_among_rows"] and abs(r["error_pct"]) < 100 for r in validation)
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == flags  # process-wide: given back
    capsys.readouterr()


def test_train_finetune_and_merge_on_the_gpu(tmp_path):
    from depthshrink.contracts.masks import per_block_masks
    from depthshrink.shrink.rebuild import build_from_spec, load_merged
    from depthshrink.training.train import load_checkpoint

    data = ["--data", "synthetic", "--subset", "512", "--no-progress", "--device", "cuda"]
    assert main(["train", "--model", "tiny_mobilenet", "--resolution", "28", "--in-channels", "1",
                 "--num-classes", "10", "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "base"),
                 *data]) == 0
    base = load_checkpoint(tmp_path / "base" / "last.pt")
    assert all(v.device.type == "cpu" for v in base["model"].values())  # a checkpoint loads anywhere
    _, space = build_from_spec(base["spec"]["model"])
    per_block_masks(space).to_json(tmp_path / "masks.json")
    assert main(["finetune", "--masks", str(tmp_path / "masks.json"), "--weights", str(tmp_path / "base" / "last.pt"),
                 "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "ft"), *data]) == 0
    assert main(["merge", "--checkpoint", str(tmp_path / "ft" / "last.pt"), "--out", str(tmp_path / "merged"),
                 "--no-measure"]) == 0
    assert load_merged(tmp_path / "merged") is not None


NCCL_SCRIPT = """
import sys, torch
torch.backends.cudnn.allow_tf32 = False
sys.path.insert(0, {tests!r})
from helpers import TinyNet
from depthshrink.training.data import synthetic
from depthshrink.training.train import TrainConfig, train
import torch.distributed as dist
model = train(TinyNet(), synthetic(96, seed=1), TrainConfig(epochs=2, batch_size=16, lr=0.1, amp=False), {out!r},
              progress=False, device="cuda", resume=True)  # a retried launch continues (helpers.torchrun)
assert dist.get_backend() == "nccl"
torch.save(model.state_dict(), {out!r} + "/rank0.pt")
dist.destroy_process_group()
"""


def test_ddp_over_nccl_with_one_process_matches_a_plain_run(tmp_path):
    from depthshrink.training.data import synthetic
    from depthshrink.training.train import TrainConfig, train

    config = TrainConfig(epochs=2, batch_size=16, lr=0.1, amp=False)
    torch.backends.cudnn.allow_tf32 = False  # as the script does: the two runs differ by cuDNN's choices only
    single = train(TinyNet(), synthetic(96, seed=1), config, tmp_path / "one", progress=False, device="cuda")
    script = tmp_path / "nccl.py"
    script.write_text(NCCL_SCRIPT.format(tests=str(TESTS), out=str(tmp_path / "ddp")))
    torchrun([str(script)], processes=1)
    ranked = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    for key, value in single.state_dict().items():
        assert torch.allclose(ranked[key].cpu(), value.cpu(), atol=1e-3), key


def test_merge_a_model_that_lives_on_the_gpu():
    from helpers import randomize

    import depthshrink
    from depthshrink.contracts.masks import per_block_masks
    from depthshrink.models import build_model

    model = randomize(build_model("tiny_mobilenet")).cuda()
    space = depthshrink.trace(model.cpu(), torch.zeros(1, 3, 16, 16), model_info={"name": "tiny_mobilenet"})
    model.cuda()
    shrunk = depthshrink.apply_masks(model, space, per_block_masks(space)).eval()
    merged = depthshrink.merge(shrunk)
    x = torch.randn(2, 3, 16, 16, device="cuda")
    with torch.no_grad():
        expected, got = shrunk(x), merged(x)
    assert got.device.type == "cuda"
    assert float((got - expected).abs().max() / expected.abs().max()) < 1e-4

"""Importance estimation: candidate segments, BN re-estimation, zero-shot/probe scores against a
direct computation, resumable parts, torchrun sharding, DepthShrinker's learnable masks."""

import copy
import itertools

import pandas as pd
import pytest
import torch
from helpers import torchrun
from torch import nn

from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.contracts.masks import Masks
from depthshrink.models import build_model
from depthshrink.models.trace import trace
from depthshrink.search.segments import candidate_segments, complete_additively
from depthshrink.shrink.apply import apply_masks
from depthshrink.training.data import synthetic
from depthshrink.training.evaluate import accuracy
from depthshrink.training.importance import (
    ImportanceConfig,
    Scorer,
    part_path,
    recorded_scores,
    reestimate_batchnorm,
    segment_masks,
)
from depthshrink.training.mask_training import masked_network


def tiny_space():
    model = build_model("tiny_mobilenet", in_channels=1, num_classes=10).eval()
    return model, trace(model, torch.zeros(1, 1, 28, 28), model_info={"name": "tiny_mobilenet"})


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return tiny_space()


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    assert main(["train", "--model", "tiny_mobilenet", "--resolution", "28", "--in-channels", "1",
                 "--num-classes", "10", "--data", "synthetic", "--subset", "1024", "--epochs", "1",
                 "--batch-size", "64", "--out", str(folder), "--no-progress"]) == 0
    return folder / "last.pt"


def test_candidate_segments_match_brute_force(tiny):
    _, space = tiny
    sites = [s for s in space.sites if s.activation is not None]
    points = [0, *(s.position for s in sites), space.num_layers]
    removable = {s.position for s in sites if s.removable}
    found = candidate_segments(space)
    for a, b in itertools.combinations(points, 2):
        inside = [p for p in points if a < p < b]
        legal = bool(inside) and all(p in removable for p in inside)
        assert ((a, b) in found) == legal, (a, b)
    assert len(found) == len(set(found)) > 20
    short = candidate_segments(space, max_removed=2)
    assert set(short) < set(found)
    assert all(sum(a < p < b for p in removable) <= 2 for a, b in short)
    for a, b in found:  # each one is a valid masks file for the space
        masks = segment_masks(space, a, b).resolve(space)
        assert set(masks.removed_activations) == {p for p in removable if a < p < b}


def test_longer_segments_are_completed_additively(tiny):
    _, space = tiny
    sites = {s.position: -0.5 - i for i, s in enumerate(s for s in space.sites if s.activation is not None)}

    def additive(a, b):  # a table that is exactly additive over sites
        return sum(v for p, v in sites.items() if a < p < b)

    for limit in (1, 2, 3):
        measured = {seg: additive(*seg) for seg in candidate_segments(space, max_removed=limit)}
        scores = complete_additively(space, measured)
        assert set(scores) == set(candidate_segments(space))
        for segment, value in scores.items():
            assert value == pytest.approx(additive(*segment)), (limit, segment)
    cuts = [0, *sites, space.num_layers]
    measured = {seg: -1.0 for seg in candidate_segments(space, max_removed=1)}  # interactions: not additive
    a, b, c = cuts[0], cuts[2], cuts[3]  # [a, c) removes the sites at cuts[1] and cuts[2]
    assert complete_additively(space, measured)[(a, c)] == pytest.approx(measured[(a, b)] + measured[(cuts[1], c)])


def test_batchnorm_reestimation_gives_the_data_statistics():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)).eval()
    images = torch.randn(300, 2, 4, 4) * 3 + 1
    reestimate_batchnorm(model, torch.utils.data.TensorDataset(images, torch.zeros(300)), batch_size=300)
    with torch.no_grad():
        features = model[0](images)
    assert torch.allclose(model[1].running_mean, features.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(model[1].running_var, features.var((0, 2, 3), unbiased=True), rtol=1e-4)
    assert model[1].momentum == 0.1 and not model.training


@pytest.mark.parametrize("method", ["zero-shot", "probe"])
def test_scores_equal_a_direct_computation(tiny, method):
    model, space = tiny
    train_data, held_out = synthetic(512, seed=0), synthetic(200, seed=1)
    config = ImportanceConfig(method, bn_images=256, probe_steps=3, probe_batch_size=32)
    scorer = Scorer(model, space, train_data, held_out, config)
    segment = candidate_segments(space)[-1]  # the longest
    shrunk = apply_masks(model, space, segment_masks(space, *segment))
    if method == "probe":
        optimizer = torch.optim.SGD(shrunk.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        order = torch.randint(0, 512, (96,), generator=torch.Generator().manual_seed(0))
        shrunk.train()
        for step in range(3):
            images, labels = train_data[order[step * 32:(step + 1) * 32]]
            with torch.no_grad():
                soft = torch.softmax(scorer.teacher(images), 1)
            logits = shrunk(images)
            loss = 0.7 * -(soft * torch.log_softmax(logits, 1)).sum(1).mean() + \
                0.3 * nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    expected = accuracy(reestimate_batchnorm(shrunk, scorer.bn_images), held_out)
    assert scorer.accuracy(*segment) == pytest.approx(expected, abs=1e-9)
    if method == "zero-shot":  # the reference: the unchanged network under the same procedure
        unchanged = reestimate_batchnorm(copy.deepcopy(model), scorer.bn_images)
        assert scorer.accuracy(0, 0) == pytest.approx(accuracy(unchanged, held_out), abs=1e-9)


def test_command_resumes_from_parts_and_refuses_other_settings(base_checkpoint, tmp_path, capsys):
    out = tmp_path / "importance.csv"
    common = ["importance", "--weights", str(base_checkpoint), "--data", "synthetic", "--bn-images", "128",
              "--held-out-images", "100", "--max-removed", "2", "--no-progress", "--out", str(out)]
    first = candidate_segments(tiny_space()[1], 2)[0]
    part = part_path(out, 0)
    part.parent.mkdir()
    part.write_text(f"start,end,accuracy\n{first[0]},{first[1]},0.125\n7,9,0.5")  # a torn last line
    with pytest.warns(UserWarning, match="torn last line"):
        assert main(common) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[:4]) == ["start", "end", "importance", "method"]
    row = frame[(frame["start"] == first[0]) & (frame["end"] == first[1])].iloc[0]
    assert row["importance"] == pytest.approx(100 * (0.125 - row["reference_accuracy"]), abs=1e-3)
    measured = frame[frame["source"] == "measured"]
    assert len(recorded_scores(out)) == len(measured) + 1  # every measured segment and the reference, once
    assert len(frame) == len(candidate_segments(tiny_space()[1]))
    assert main([*common, "--bn-images", "64"]) == 1  # other settings, same parts
    assert "holds scores of a run with other settings" in capsys.readouterr().err
    lines = part.read_text().splitlines()
    assert len(lines) == len(set(lines)) == len(measured) + 1 + 1  # header, reference, each segment once


def test_torchrun_shards_equal_one_process(base_checkpoint, tmp_path):
    common = ["--weights", str(base_checkpoint), "--data", "synthetic", "--bn-images", "128",
              "--held-out-images", "100", "--max-removed", "1", "--no-progress"]
    assert main(["importance", *common, "--out", str(tmp_path / "one.csv")]) == 0
    torchrun(["-m", "depthshrink.cli.main", "importance", *common, "--out", str(tmp_path / "two.csv")])
    one, two = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "two.csv")
    pd.testing.assert_frame_equal(one, two)
    ranks = sorted(p.name for p in (tmp_path / "two.csv.parts").glob("rank*.csv"))
    assert ranks == ["rank0.csv", "rank1.csv"]


def test_learnable_masks_gate_between_the_network_and_its_linear_version(tiny):
    model, space = tiny
    removable = [s.position for s in space.sites if s.activation is not None and s.removable]
    images = torch.randn(4, 1, 28, 28)
    all_kept = masked_network(model, space, keep=len(removable)).eval()
    assert torch.allclose(all_kept(images), model(images), atol=1e-6)
    none_kept = masked_network(model, space, keep=0).eval()
    linear = apply_masks(model, space, Masks([p for p in (s.position for s in space.sites if s.activation)
                                              if p not in removable],
                                             [(p, p + 1) for p in range(space.num_layers)], model=space.model))
    assert torch.allclose(none_kept(images), linear.eval()(images), atol=1e-5)
    half = masked_network(model, space, keep=2)
    half(images).sum().backward()
    scores = half.get_submodule("depthshrink_masks").scores
    assert scores.grad is not None and scores.grad.abs().sum() > 0  # straight-through
    with pytest.raises(DepthshrinkError, match="between 0 and"):
        masked_network(model, space, keep=len(removable) + 1)


def test_masks_method_writes_scores_for_every_segment(base_checkpoint, tmp_path):
    out = tmp_path / "masks.csv"
    assert main(["importance", "--method", "masks", "--weights", str(base_checkpoint), "--data", "synthetic",
                 "--subset", "512", "--keep", "3", "--no-progress", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[:5]) == ["start", "end", "importance", "method", "unit"]
    assert (frame["method"] == "masks").all() and (frame["importance"] <= 0).all()
    assert frame["importance"].min() < -1  # long segments remove several scored sites
    assert (frame["importance"] == 0).any()  # the lowest-scoring site normalises to 0
    _, space = tiny_space()
    cuts = [0, *sorted(s.position for s in space.sites if s.activation is not None), space.num_layers]
    score = {(a, b): v for a, b, v in zip(frame["start"], frame["end"], frame["importance"])}
    alone = {cuts[i]: score[(cuts[i - 1], cuts[i + 1])] for i in range(1, len(cuts) - 1)}
    for (a, c), value in score.items():  # a segment scores the sum of its sites: additive by construction
        assert value == pytest.approx(sum(v for p, v in alone.items() if a < p < c), abs=1e-5)
    assert len(frame) == len(candidate_segments(tiny_space()[1]))


def test_the_masks_method_refuses_training_images_that_make_no_batch(base_checkpoint, tmp_path, capsys):
    """Fewer training images than a batch: no step ran, and the scores printed were their random start."""
    assert main(["importance", "--method", "masks", "--weights", str(base_checkpoint), "--data", "synthetic",
                 "--subset", "100", "--no-progress", "--out", str(tmp_path / "masks.csv")]) == 1
    assert "training images make none" in capsys.readouterr().err and not (tmp_path / "masks.csv").exists()


class _ParameterisedActivations(nn.Module):
    """Activations with arguments of their own, as modules, functions and an in-place call."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, k, 1, k // 2) for c_in, c_out, k in
                                   ((1, 8, 3), (8, 16, 1), (16, 16, 3), (16, 8, 1), (8, 16, 1)))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c.out_channels) for c in self.convs)
        self.slope = nn.LeakyReLU(0.5)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.nn.functional.leaky_relu(self.bns[0](self.convs[0](x)), 0.3)  # the stem's
        x = self.slope(self.bns[1](self.convs[1](x)))
        x = torch.nn.functional.hardtanh(self.bns[2](self.convs[2](x)), -0.5, 0.5)
        x = torch.nn.functional.relu(self.bns[3](self.convs[3](x)), inplace=True)
        x = torch.nn.functional.elu(self.bns[4](self.convs[4](x)), alpha=2.0)
        return self.head(x.mean((2, 3)))


def test_the_masks_keep_each_activations_own_arguments():
    """The mask bank rebuilt each activation from its name: LeakyReLU(0.5) became LeakyReLU(0.01),
    so the masked network with every activation kept was not the base network."""
    torch.manual_seed(0)
    model = _ParameterisedActivations().eval()
    space = trace(model, torch.zeros(1, 1, 12, 12), model_info={"name": "x"})
    removable = [s for s in space.sites if s.activation is not None and s.removable]
    assert [s.activation for s in removable] == ["leaky_relu", "hardtanh"]  # the LeakyReLU(0.5), the bounds
    images = torch.randn(4, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(masked_network(model, space, keep=len(removable)).eval()(images), model(images),
                              atol=1e-6)


def test_batchnorm_reestimation_weighs_every_image_alike():
    """257 images went as a batch of 256 and a batch of 1, each weighing half: the last image counted 128 times."""
    from torch.utils.data import TensorDataset

    images = torch.zeros(257, 1, 4, 4)
    images[-1] = 10.0
    norm = nn.BatchNorm2d(1)
    reestimate_batchnorm(nn.Sequential(norm), TensorDataset(images, torch.zeros(257)))
    assert norm.running_mean.item() == pytest.approx(10 / 257, rel=0.01)  # was 5.0

"""Datasets: the idx reader, real Fashion-MNIST, synthetic data, held-out splits."""

import struct

import numpy as np
import pytest
import torch
from helpers import write_idx

from depthshrink import DepthshrinkError
from depthshrink.training.data import FASHION_MNIST, fashion_mnist, held_out_split, read_idx, synthetic


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress)
    assert np.array_equal(read_idx(path), array)


def test_corrupt_idx_and_missing_data_are_refused(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03")
    with pytest.raises(DepthshrinkError, match="not an idx file"):
        read_idx(tmp_path / "bad.idx")
    with pytest.raises(DepthshrinkError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist("train", root=tmp_path)
    with pytest.raises(DepthshrinkError, match="splits train and test"):
        fashion_mnist("validation")


@pytest.mark.parametrize("compress", [False, True])
def test_a_folder_of_idx_files_reads_gzipped_or_unpacked(tmp_path, compress):
    """Unpacked idx files were found by the data loader's check, then refused for lacking .gz names."""
    from depthshrink.training.data import DataSpec, load_split

    suffix = ".gz" if compress else ""
    images = np.random.default_rng(0).integers(0, 256, (30, 28, 28))
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.arange(30) % 10, compress)
    test = load_split(DataSpec(str(tmp_path)), "test")
    assert len(test) == 30 and test.tensors[1].tolist() == [i % 10 for i in range(30)]


@pytest.mark.skipif(not (FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (make installs it as root)")
def test_real_fashion_mnist():
    test = fashion_mnist("test")
    images, labels = test.tensors
    assert images.shape == (10_000, 1, 28, 28) and labels.shape == (10_000,)
    assert np.bincount(labels.numpy()).tolist() == [1000] * 10  # balanced classes
    assert abs(float(images.mean())) < 0.1 and 0.9 < float(images.std()) < 1.1  # normalised


def test_synthetic_and_split():
    data = synthetic(100, seed=1)
    assert data.tensors[0].shape == (100, 1, 28, 28) and int(data.tensors[1].max()) <= 9
    train, held = held_out_split(100, 20)
    assert len(train) == 80 and len(held) == 20 and not set(train) & set(held)
    assert np.array_equal(held, held_out_split(100, 20)[1])
    with pytest.raises(DepthshrinkError, match="cannot hold out"):
        held_out_split(10, 10)


def test_corrupt_gzip_and_truncated_idx_are_refused(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DepthshrinkError, match="is corrupt"):
        read_idx(tmp_path / "x.gz")
    header = struct.pack(">BBBB", 0, 0, 0x08, 1) + struct.pack(">I", 10)
    (tmp_path / "short.idx").write_bytes(header + b"\x00" * 4)
    with pytest.raises(DepthshrinkError, match="truncated"):
        read_idx(tmp_path / "short.idx")


def test_image_folder_reads_class_folders_with_pil(tmp_path):
    from PIL import Image

    from depthshrink.cli.main import main
    from depthshrink.training.folders import ImageFolder

    for split in ("train", "val"):
        for label, name in enumerate(["cat", "dog"]):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(3):
                pixels = np.full((40, 30, 3), 60 * label + 10 * i, dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / name / f"{i}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "train" / ".ipynb_checkpoints" / "x.png")
    data = ImageFolder(tmp_path / "train", size=16, channels=3)
    assert data.classes == ["cat", "dog"] and len(data) == 6 and data.targets.tolist() == [0, 0, 0, 1, 1, 1]
    image, label = data[4]
    assert image.shape == (3, 16, 16) and label == 1
    assert float(image[0, 0, 0]) == pytest.approx((70 / 255 - 0.5) / 0.5, abs=1e-6)
    assert ImageFolder(tmp_path / "train", size=8, channels=1)[0][0].shape == (1, 8, 8)
    with pytest.raises(DepthshrinkError, match="no images"):
        ImageFolder(tmp_path / "train" / "cat", size=8)
    with pytest.raises(DepthshrinkError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere", size=8)
    assert main(["train", "--model", "tiny_mobilenet", "--resolution", "32", "--num-classes", "2",
                 "--data", str(tmp_path), "--epochs", "1", "--batch-size", "2", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--data", str(tmp_path)]) == 0
    val = ImageFolder(tmp_path / "val", 8, classes=["ant", "cat", "dog"])  # the training split's numbering
    assert val.targets.tolist() == [1, 1, 1, 2, 2, 2]
    with pytest.raises(DepthshrinkError, match=r"classes the training split lacks: \['dog'\]"):
        ImageFolder(tmp_path / "val", 8, classes=["cat"])
    assert main(["train", "--model", "tiny_mobilenet", "--resolution", "32", "--data", str(tmp_path / "none"),
                 "--out", str(tmp_path / "bad")]) == 1
    flat = tmp_path / "flat"  # classes at the root beside val/: val/ was a training class, its images trained on
    (tmp_path / "train").rename(flat)
    (tmp_path / "val").rename(flat / "val")
    from depthshrink.training.data import DataSpec, load_split
    with pytest.raises(DepthshrinkError, match=r"has val/ but no train/: put the training classes under"):
        load_split(DataSpec(str(flat)), "train", {"height": 16, "in_channels": 1})


def test_cifar10_batches_load_and_foreign_pickles_are_refused(tmp_path):
    import pickle

    from depthshrink.training.folders import cifar10

    rng = np.random.default_rng(0)
    for name, size in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 3)]:
        batch = {b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8), b"labels": list(range(size))}
        (tmp_path / name).write_bytes(pickle.dumps(batch, protocol=2 if name == "test_batch" else 5))
    train, test = cifar10(tmp_path, "train"), cifar10(tmp_path, "test")
    assert train.tensors[0].shape == (20, 3, 32, 32) and test.tensors[1].tolist() == [0, 1, 2]
    assert abs(float(train.tensors[0].mean())) < 0.5

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(DepthshrinkError, match="refusing to load builtins.print"):
        cifar10(tmp_path, "test")


def test_augment_shifts_and_flips_each_image_within_its_bounds():
    from depthshrink.training.data import augment

    torch.manual_seed(0)
    x = torch.randn(64, 2, 9, 9)
    flipped_only = augment(x, shift=0)
    same = [bool(torch.equal(a, b)) for a, b in zip(flipped_only, x)]
    mirrored = [bool(torch.equal(a, b.flip(2))) for a, b in zip(flipped_only, x)]
    assert all(s or m for s, m in zip(same, mirrored)) and 10 < sum(mirrored) < 54
    shifted = augment(x, shift=2)
    assert shifted.shape == x.shape
    # the 5x5 centre of a shifted image is a window of the original or of its mirror image
    for a, b in zip(shifted, x):
        centre = a[:, 2:7, 2:7]
        windows = [w[:, i:i + 5, j:j + 5] for w in (b, b.flip(2)) for i in range(5) for j in range(5)]
        assert any(torch.equal(centre, w) for w in windows)
    assert augment(x.contiguous(memory_format=torch.channels_last)).is_contiguous(memory_format=torch.channels_last)

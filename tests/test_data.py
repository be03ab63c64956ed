"""Datasets: the idx reader, real Fashion-MNIST, synthetic data, held-out splits."""

import gzip
import struct

import numpy as np
import pytest

from depthshrink import DepthshrinkError
from depthshrink.shrink.data import FASHION_MNIST, fashion_mnist, held_out_split, read_idx, synthetic


def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as handle:
        handle.write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    _write_idx(path, array, compress)
    assert np.array_equal(read_idx(path), array)


def test_corrupt_idx_and_missing_data_are_refused(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03")
    with pytest.raises(DepthshrinkError, match="not an idx file"):
        read_idx(tmp_path / "bad.idx")
    with pytest.raises(DepthshrinkError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist("train", root=tmp_path)
    with pytest.raises(DepthshrinkError, match="splits train and test"):
        fashion_mnist("validation")


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

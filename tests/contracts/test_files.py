"""The lock a profiling session holds on its LUT: released however the block ends."""

import os

from depthshrink.contracts.files import FileLock


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_file_removed_inside_the_block_releases_the_lock_and_its_descriptor(tmp_path):
    path, before = tmp_path / "lut.csv", _open_descriptors()
    with FileLock(path, "profile-device"):
        path.unlink()  # the old code's stat() raised here, before closing: the lock stayed held
    assert _open_descriptors() == before and not FileLock._held
    with FileLock(path, "profile-device"):
        pass
    assert not path.exists()  # created by the block, left empty: removed


def test_a_file_replaced_inside_the_block_is_not_removed(tmp_path):
    path = tmp_path / "lut.csv"
    with FileLock(path, "profile-device"):
        path.unlink()
        path.write_text("another writer's\n")  # not the empty file this block created
    assert path.read_text() == "another writer's\n"

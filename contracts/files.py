"""Writing files so that a crash never leaves half of one: whole files are written beside their
target and renamed into place; LUT-style CSVs grow by one line per ``write`` (then ``fsync``).
New files get the usual permissions (0666 less the umask), as ``open`` would give them."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from ..errors import DepthshrinkError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_file_target(path: str | os.PathLike) -> Path:
    """``path`` as a file to write: refused in one line when it is a folder or its folder is missing
    (before the work whose result it is to hold)."""
    target = Path(path)
    if target.is_dir():
        raise DepthshrinkError(f"cannot write {target}: it is a folder")
    if not target.parent.is_dir():
        raise DepthshrinkError(f"cannot write {target}: folder {target.parent} does not exist")
    return target


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place. A target
    that is no regular file (``/dev/stdout``, a pipe) is written directly."""
    target = check_file_target(path)
    if target.exists() and not target.is_file():
        write(target)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: a shared table must stay readable
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a folder to write ``what`` into: refused in one line when it is a file (before
    the minutes of work that would fail at its ``mkdir``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DepthshrinkError(f"cannot write {what} into {path}: it is a file, not a folder")
    return path


def refuse_overwriting(outputs: dict[str, str | os.PathLike], inputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse in one line an output (option name -> path) that names one of the inputs: it would
    be replaced by what is written, and the next run would read that instead."""
    read = {Path(path).resolve(): name for name, path in inputs.items() if path}
    for name, path in outputs.items():
        if Path(path).resolve() in read:
            raise DepthshrinkError(f"{name} {path} is the {read[Path(path).resolve()]} this command reads: "
                                   f"give {name} another path")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: str | os.PathLike, data: dict | list) -> None:
    """Write JSON (indented) atomically."""
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def read_json(path: str | os.PathLike, what: str) -> dict:
    """A JSON object from ``path``; a missing, unreadable or non-object file is one clear error."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DepthshrinkError(f"{what} file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DepthshrinkError(f"{what} file {path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise DepthshrinkError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise DepthshrinkError(f"{what} file {path} does not hold a JSON object")
    return data


def append_csv_line(path: Path, values: list) -> None:
    """Append one CSV line with a single ``write`` (then ``fsync``): a crash tears at most it."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, buffer.getvalue().encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def cut_torn_line(path: Path) -> bytes:
    """Cut a torn last line (an interrupted append) off ``path``, with a warning; what is kept."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        warnings.warn(f"{path}: dropped a torn last line (an interrupted write): {data[cut:][:60]!r}",
                      stacklevel=3)
        with open(path, "r+b") as handle:
            handle.truncate(cut)
        data = data[:cut]
    return data


class FileLock:
    """An exclusive lock on ``path`` itself (created if absent, removed again if the block leaves it
    empty) for as long as the block runs: a second process is refused at once, with a line naming
    the file, rather than interleaving its writes (``flock``: released by the system if the holder
    dies). A block inside another of the same process on the same path just runs."""

    _held: dict[Path, int] = {}  # paths this process holds, with how many blocks hold each

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        self.path, self.what, self.fd, self.created = Path(path), what, None, False

    def __enter__(self) -> FileLock:
        import fcntl

        key = self.path.resolve()
        if key in FileLock._held:  # this process holds it already (an outer block): nested, not refused
            FileLock._held[key] += 1
            return self
        check_file_target(self.path)
        self.created = not self.path.exists()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise DepthshrinkError(f"{self.path} is being written by another process ({self.what}): wait for it "
                                   "to finish, or write to another file") from None
        FileLock._held[key] = 1
        return self

    def __exit__(self, *exc) -> None:
        key = self.path.resolve()
        FileLock._held[key] -= 1
        if FileLock._held[key] == 0:
            del FileLock._held[key]
            try:
                ours = os.fstat(self.fd)
                if self.created and ours.st_size == 0 and os.path.samestat(ours, self.path.stat()):
                    self.path.unlink()  # a block that wrote nothing leaves nothing (if the file is still ours)
            except FileNotFoundError:
                pass  # removed inside the block
            finally:  # closing the descriptor releases the lock (after the unlink: no one else took it)
                os.close(self.fd)
                self.fd = None

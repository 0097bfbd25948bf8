"""Reading a model folder as untrusted input.

A models folder may be mounted from anywhere, so its files are opened defensively:

- the folder itself must not be a symlink, and each file is opened relative to the folder's own
  descriptor with O_NOFOLLOW: no symlink is followed, in or out of the folder;
- O_NONBLOCK on open, then fstat: only a regular file is read (a FIFO, a device such as /dev/zero or
  a socket is refused without blocking or reading from it);
- a size cap per file is checked on the descriptor BEFORE anything is read or parsed, and again
  while reading (a file that grows meanwhile is still cut off at the cap).

Every refusal is a `FileRejected` whose message names the file and, for a size, the cap and the
environment variable that sets it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class FileRejected(Exception):
    """A file of a model folder that is not read: the message names the file and the reason."""


@dataclass(frozen=True)
class FileLimits:
    """Caps on what one model folder may make the process read (service: SLIMTEXT_MAX_*)."""

    manifest_bytes: int = 1 * MiB
    vocab_bytes: int = 64 * MiB
    vocab_entries: int = 2_000_000
    model_bytes: int = 512 * MiB


DEFAULT_LIMITS = FileLimits()


def open_folder(folder: str | Path) -> int:
    """A descriptor on the folder itself; a symlinked folder is refused."""
    folder = Path(folder)
    try:
        return os.open(folder, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
    except OSError as e:
        if folder.is_symlink():
            raise FileRejected(f"{folder}: the folder is a symlink; not followed") from e
        raise FileRejected(f"{folder}: cannot open the folder ({e.strerror})") from e


def open_capped(folder: str | Path, name: str, cap: int, cap_name: str) -> int:
    """An open descriptor (blocking, read-only) on `folder/name`, a regular file of at most `cap` bytes,
    never reached through a symlink; the caller closes it.

    `name` is a plain file name (no separator), so nothing can lead out of the folder. Raises
    FileNotFoundError when the file does not exist and FileRejected for anything else that is wrong.
    """
    if not name or "/" in name or name in (".", ".."):
        raise FileRejected(f"{name!r}: not a plain file name")
    path = Path(folder) / name
    dir_fd = open_folder(folder)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as e:
            if os.path.islink(path):
                raise FileRejected(f"{path}: is a symlink (to {os.readlink(path)!r}); not followed") from e
            raise FileRejected(f"{path}: cannot open ({e.strerror})") from e
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRejected(f"{path}: not a regular file ({_kind(st.st_mode)}); not read")
        if st.st_size > cap:
            raise FileRejected(f"{path}: {st.st_size} bytes, over the cap {cap_name}={cap}")
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_capped(folder: str | Path, name: str, cap: int, cap_name: str) -> bytes:
    """The bytes of `folder/name`, checked as `open_capped` checks it."""
    fd = open_capped(folder, name, cap, cap_name)
    try:
        return read_fd(fd, cap, Path(folder) / name, cap_name)
    finally:
        os.close(fd)


def read_fd(fd: int, cap: int, path: Path, cap_name: str, chunk: int | None = None, sink=None) -> bytes:
    """Read an open file from its start; over `cap` bytes (it grew while read) is FileRejected.
    With `sink`, the bytes go to `sink(chunk)` piece by piece instead and b"" is returned (no copy kept)."""
    with os.fdopen(fd, "rb", closefd=False) as f:
        f.seek(0)
        if sink is None:
            data = f.read(cap + 1)
            if len(data) > cap:
                raise FileRejected(f"{path}: grew past the cap {cap_name}={cap} while being read")
            return data
        size = 0
        while piece := f.read(chunk or 1 << 20):
            size += len(piece)
            if size > cap:
                raise FileRejected(f"{path}: grew past the cap {cap_name}={cap} while being read")
            sink(piece)
        return b""


def _kind(mode: int) -> str:
    for test, word in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return "not a regular file"


def lstat_size(path: Path) -> int | None:
    """Size of a regular file without following a symlink; None for anything else."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None

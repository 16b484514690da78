"""Every byte music2image writes into an output folder goes through `Files`: atomic writes, journal appends, and
the folder lock.

Every file is written to a temporary name in its own folder, fsync'd and renamed over the target, so a kill at
any instant leaves the old file or the new one, never a torn one. `Files` is also the one seam tests use to crash
a run inside the real write path (tests/helpers/kill_at.py subclasses it); nothing else needs patching.

Nothing is written through a symbolic link: every file we create or append to is opened with O_NOFOLLOW (a planted
`OUT/.music2image.lock -> ~/precious.txt` is refused, not truncated), temporaries are created with O_EXCL, and a
path below the output folder is checked for linked folders (`links_below`) before anything is written into it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..errors import OutputDirError
from ..untrusted_json import loads as parse_json
from . import indented_json

LOCK_NAME = ".music2image.lock"


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class LinkedPathError(OSError):
    """A path we were about to write through is a symbolic link (errno ELOOP; the message names the path)."""

    def __init__(self, path: Path):
        super().__init__(errno.ELOOP, f"{describe_link(path)}: music2image never writes through links", str(path))


def describe_link(path: Path) -> str:
    """'PATH is a symbolic link to TARGET' (or 'PATH leaves the output folder' for a `..` or absolute path)."""
    try:
        return f"{path} is a symbolic link to {os.readlink(path)}"
    except OSError:
        return f"{path} is a symbolic link" if os.path.islink(path) else f"{path} leaves the output folder"


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """os.open that refuses a symbolic link as the last part of `path` (O_NOFOLLOW), saying which path it is."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise LinkedPathError(Path(path)) from None
        raise


def links_below(root: Path, relative_paths) -> list[Path]:
    """Every symbolic link among `root / relative` and the folders between `root` and it, for each relative path
    (`root` itself is the user's choice and may be a link). A path that leaves `root` (`..`, absolute) counts as
    a link: nothing we write may resolve outside the output folder."""
    root = Path(root)
    found: dict[Path, None] = {}
    for relative in relative_paths:
        relative = Path(relative)
        if relative.is_absolute() or ".." in relative.parts:
            found[root / relative] = None
            continue
        path = root
        for part in relative.parts:
            path = path / part
            if path.is_symlink():
                found[path] = None
                break
    return list(found)


def refuse_links_below(root: Path, relative_path) -> None:
    """Raise LinkedPathError (an OSError) if writing `root / relative_path` would go through a link."""
    links = links_below(root, [relative_path])
    if links:
        raise LinkedPathError(links[0])


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Files:
    """The write path. Subclass it to observe or interrupt writes (tests); each step calls the next for real."""

    def write_temporary(self, tmp: Path, data: bytes | Iterable[bytes]) -> None:
        # A new file only (O_EXCL): never an existing file, nor a link planted under the temporary's name.
        fd = open_no_follow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                for chunk in data:
                    handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())

    def replace(self, tmp: Path, path: Path) -> None:
        os.replace(tmp, path)

    def write_atomic(self, path: Path, data: bytes | Iterable[bytes]) -> None:
        """Write `data` (bytes, or chunks of them) to `path` so that readers (and a crash) see the old file or the
        new one, never half."""
        path = Path(path)
        # A random part: a name no earlier run (same pid in a container, same thread id) can have left behind.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        created = False
        try:
            self.write_temporary(tmp, data)
            created = True
            self.replace(tmp, path)
        except BaseException as exc:
            # Remove our temporary, never a file or link that was already there under its name (O_EXCL refused it).
            if created or not isinstance(exc, OSError) or exc.errno not in (errno.EEXIST, errno.ELOOP):
                try:
                    tmp.unlink()
                except OSError:
                    pass
            raise
        _fsync_dir(path.parent)

    def write_into(self, root: Path, relative_path: str | os.PathLike, data: bytes) -> Path:
        """`write_atomic` of `root / relative_path`, creating its folders, refusing any symbolic link between
        `root` and the file (a planted `sample_000 -> /elsewhere` would otherwise receive the file)."""
        refuse_links_below(root, relative_path)
        target = Path(root) / relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        self.write_atomic(target, data)
        return target

    def write_json(self, path: Path, document) -> None:
        """`json.dumps(document, indent=2, ensure_ascii=False)` and a newline, the same bytes, written as it is
        encoded: a 100k-image log is never held as one string (that string and its pieces cost ~300 MB). Encoded
        by indented_json (the C encoder's speed for our shapes); a generator in `document` stands for its list."""
        self.write_atomic(path, _json_chunks(document))

    def append_line(self, handle, line: bytes) -> None:
        """One journal record: written, flushed and fsync'd before this returns."""
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _json_chunks(document, pieces_per_chunk: int = 4096) -> Iterator[bytes]:
    pieces: list[str] = []
    for piece in indented_json.iterencode(document):
        pieces.append(piece)
        if len(pieces) == pieces_per_chunk:
            yield "".join(pieces).encode("utf-8")
            pieces.clear()
    pieces.append("\n")
    yield "".join(pieces).encode("utf-8")


DEFAULT_FILES = Files()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    DEFAULT_FILES.write_atomic(path, data)


def atomic_write_json(path: Path, document) -> None:
    DEFAULT_FILES.write_json(path, document)


def remove_stale_temporaries(output_dir: Path) -> int:
    """Temporary files of a killed run (never renamed into place) are garbage: remove them. Call under the lock.
    A `sample_*` folder that is a symbolic link is not looked into: nothing outside the output folder is deleted."""
    removed = 0
    # One scandir per folder (a 100k-prompt folder has 20k sample folders: Path.glob's per-folder setup cost
    # 0.8 s of a re-run that makes nothing); `is_dir(follow_symlinks=False)` is the linked-folder check.
    folders = [os.fspath(output_dir)] + [entry.path for entry in _entries(output_dir)
                                         if entry.name.startswith("sample_") and entry.is_dir(follow_symlinks=False)]
    for folder in folders:
        for entry in _entries(folder):
            name = entry.name  # the glob `.*.tmp`, without fnmatch's cost per name
            if len(name) >= 5 and name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed


def _entries(folder) -> list[os.DirEntry]:
    """A folder's entries; none for a folder we cannot read (nothing to remove there that we could)."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return []


class TextLogHandler(logging.FileHandler):
    """logging's FileHandler for the run's text log, opened with O_NOFOLLOW: it never appends through a link."""

    def _open(self):
        fd = open_no_follow(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


class OutputLock:
    """One run per output folder. flock is released by the kernel when a process dies, so a lock left by a
    dead run is simply taken over; the file says who holds it, for the message."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self._fd = None

    def acquire(self) -> "OutputLock":
        while True:
            try:
                fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # a planted link, an unwritable or read-only folder: nothing was written
                raise OutputDirError(f"{self.path.parent}: cannot lock the output folder: "
                                     f"{exc.strerror or exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise OutputDirError(self._held_message()) from None
            # The file may have been removed by the previous holder between our open and flock: lock the new one.
            try:
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            break
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def _held_message(self) -> str:
        try:
            holder = parse_json(self.path.read_text())
            who = f"process {holder['pid']} on {holder['host']} (started {holder['started']})"
        except (OSError, ValueError, KeyError, TypeError):
            who = "another process"
        return (
            f"{self.path.parent}: another music2image run is writing here: {who}. "
            "Wait for it to finish, stop it, or choose another --output-dir."
        )

    def release(self) -> None:
        if self._fd is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

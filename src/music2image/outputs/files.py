"""Every byte music2image writes into an output folder goes through `Files`: atomic writes, journal appends, and
the folder lock.

Every file is written to a temporary name in its own folder, fsync'd and renamed over the target, so a kill at
any instant leaves the old file or the new one, never a torn one. `Files` is also the one seam tests use to crash
a run inside the real write path (tests/helpers/kill_at.py subclasses it); nothing else needs patching.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path

from ..errors import OutputDirError

LOCK_NAME = ".music2image.lock"


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


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

    def write_temporary(self, tmp: Path, data: bytes) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def replace(self, tmp: Path, path: Path) -> None:
        os.replace(tmp, path)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Write `data` to `path` so that readers (and a crash) see the old file or the new one, never half."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.write_temporary(tmp, data)
            self.replace(tmp, path)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        _fsync_dir(path.parent)

    def write_json(self, path: Path, document) -> None:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        self.write_atomic(path, text.encode("utf-8"))

    def append_line(self, handle, line: bytes) -> None:
        """One journal record: written, flushed and fsync'd before this returns."""
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


DEFAULT_FILES = Files()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    DEFAULT_FILES.write_atomic(path, data)


def atomic_write_json(path: Path, document) -> None:
    DEFAULT_FILES.write_json(path, document)


def remove_stale_temporaries(output_dir: Path) -> int:
    """Temporary files of a killed run (never renamed into place) are garbage: remove them. Call under the lock."""
    removed = 0
    for folder in [Path(output_dir), *Path(output_dir).glob("sample_*")]:
        for tmp in folder.glob(".*.tmp"):
            try:
                tmp.unlink()
                removed += 1
            except OSError:
                pass
    return removed


class OutputLock:
    """One run per output folder. flock is released by the kernel when a process dies, so a lock left by a
    dead run is simply taken over; the file says who holds it, for the message."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self._fd = None

    def acquire(self) -> "OutputLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
            holder = json.loads(self.path.read_text())
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

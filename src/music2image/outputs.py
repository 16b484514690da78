"""Files we write: images with their recipe inside, atomic writes, the journal, the lock, log and summary JSON.

Every file is written to a temporary name in its own folder, fsync'd and renamed over the target, so a kill
at any instant leaves the old file or the new one, never a torn one. The journal is append-only JSON lines,
one fsync'd record per finished image; log and summary are rebuilt from it.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import OutputDirError
from .image_text import read_image_text  # noqa: F401  (read back without decoding pixels; kept importable here)

JOURNAL_NAME = "generation_journal.jsonl"
LOG_NAME = "image_generation_log.json"
SUMMARY_NAME = "image_generation_summary.json"
TEXT_LOG_NAME = "generate_images.log"
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers (and a crash) see the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


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


def atomic_write_json(path: Path, document) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


# Images ---------------------------------------------------------------------------------------------------
def a1111_quote(value) -> str:
    """Quote a value the way AUTOMATIC1111's infotext does: JSON-quoted when it holds `,` `:` or a newline."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_parameters(prompt: str, negative_prompt: str | None, fields: dict) -> str:
    """The `parameters` text that A1111's PNG Info, Civitai and most metadata readers parse."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{key}: {a1111_quote(value)}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)


def encode_image(pixels: np.ndarray, image_format: str, text: dict[str, str]) -> bytes:
    """Pixels → file bytes with text metadata. Deterministic: the same pixels and text give the same bytes."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if image_format == "png":
        info = PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value)  # iTXt: UTF-8, so prompts in any language survive
        image.save(buffer, format="PNG", pnginfo=info)
    else:
        # WebP and JPEG have no text chunks: A1111 puts `parameters` into EXIF UserComment; we do the same
        # and keep the JSON recipe in the ImageDescription tag.
        exif = Image.Exif()
        exif[0x010E] = text.get("music2image", "")  # ImageDescription
        # UserComment lives in the Exif sub-IFD, where A1111 (via piexif) reads it.
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.get("parameters", "").encode("utf-16-be")
        options = {"quality": 95} if image_format == "jpeg" else {"quality": 95, "method": 4}
        image.save(buffer, format="JPEG" if image_format == "jpeg" else "WEBP", exif=exif, **options)
    return buffer.getvalue()


# The journal ----------------------------------------------------------------------------------------------
class Journal:
    """Append-only JSON lines; each record is flushed and fsync'd before `append` returns."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handle = None

    def _open(self):
        if self._handle is None:
            self._handle = open(self.path, "ab")
            # A kill mid-append can leave a torn last line: end it, so the next record starts on its own line.
            if self._handle.tell() > 0:
                with open(self.path, "rb") as reader:
                    reader.seek(-1, os.SEEK_END)
                    if reader.read(1) != b"\n":
                        self._handle.write(b"\n")
        return self._handle

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
        with self._lock:
            handle = self._open()
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    @staticmethod
    def read(path: Path) -> list[dict]:
        """Every complete record; a torn or garbled line (from a kill mid-write) is passed over."""
        try:
            return _parse_records(Path(path).read_bytes())
        except FileNotFoundError:
            return []

    @staticmethod
    def read_from(path: Path, offset: int) -> tuple[list[dict], int]:
        """The records of whole lines appended since byte `offset`, and the offset to read from next time (a line
        still being written is left for then). For following a journal another process is writing."""
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        return _parse_records(data[:end]), offset + end


def _parse_records(data: bytes) -> list[dict]:
    records = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_journal_dir(output_dir: Path) -> list[dict]:
    """The records of the journal and of every per-process shard (`generation_journal.*.jsonl`), in order."""
    records = []
    for path in sorted(Path(output_dir).glob("generation_journal*.jsonl")):
        records.extend(Journal.read(path))
    records.sort(key=lambda r: r.get("t", 0.0))  # stable: file order breaks ties
    return records


def latest_image_records(records: list[dict]) -> dict[tuple[int, int], dict]:
    latest = {}
    for record in records:
        if record.get("type") == "image":
            latest[(record["sample_idx"], record["prompt_id"])] = record
    return latest


def latest_run_recipe(records: list[dict]) -> dict | None:
    recipe = None
    for record in records:
        if record.get("type") == "run":
            recipe = record.get("recipe")
    return recipe


# The lock -------------------------------------------------------------------------------------------------
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

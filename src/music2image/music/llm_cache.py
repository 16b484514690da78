"""LLM answers on disk, keyed by the whole request, so a re-run or a resumed run never pays for an answer twice.

One JSON file per request, named by the SHA-256 of the request (endpoint, provider and the full body: model,
messages, temperature, seed, schema, token limit). It holds that request body and the answer text — never a key or
any header. A missing, unreadable or malformed entry is simply asked again: the folder is a cache, not a source
of truth, and every file in it is untrusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..errors import DiskError
from ..outputs import atomic_write_bytes
from ..outputs.files import refuse_links_below
from ..untrusted_json import loads as parse_json

log = logging.getLogger("music2image")
CACHE_FORMAT = 1
MAX_ENTRY_BYTES = 1024 * 1024  # an answer is a few hundred bytes; a huge file is not ours


def request_key(endpoint: str, provider: str, body: dict) -> str:
    canonical = json.dumps({"endpoint": endpoint, "provider": provider, "body": body}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    """`get`/`put` answers by request key in `folder` (created on the first `put`); `folder=None` keeps them in
    memory only, for the length of one run."""

    def __init__(self, folder: Path | None):
        self.folder = None if folder is None else Path(folder)
        self._memory: dict[str, str] = {}
        if self.folder is not None and self.folder.is_symlink():
            from ..errors import LLMError

            raise LLMError(f"{self.folder}: the LLM answer cache is a symbolic link; remove it or choose another "
                           "--output")

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        if key in self._memory:
            return self._memory[key]
        if self.folder is None:
            return None
        path = self._path(key)
        try:
            if path.is_symlink() or path.stat().st_size > MAX_ENTRY_BYTES:
                return None
            entry = parse_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.warning("%s: unreadable LLM cache entry, asking again (%s)", path, exc)
            return None
        if not (isinstance(entry, dict) and entry.get("format") == CACHE_FORMAT and entry.get("key") == key
                and isinstance(entry.get("answer"), str)):
            log.warning("%s: not an LLM cache entry of this version, asking again", path)
            return None
        self._memory[key] = entry["answer"]
        return entry["answer"]

    def put(self, key: str, body: dict, answer: str) -> None:
        self._memory[key] = answer
        if self.folder is None:
            return
        path = self._path(key)
        data = json.dumps({"format": CACHE_FORMAT, "key": key, "request": body, "answer": answer}, indent=1,
                          ensure_ascii=False, sort_keys=True) + "\n"
        try:
            # A planted `ab -> /elsewhere` took the answers out of the cache folder: never written through a link.
            refuse_links_below(self.folder, path.relative_to(self.folder))
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data.encode("utf-8"))
        except OSError as exc:
            raise DiskError(f"{path}: the LLM answer cannot be cached ({exc.strerror or exc})") from exc

"""Where music2image caches what it builds or computes once (the tiny model, checkpoint hashes): $XDG_CACHE_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "music2image"

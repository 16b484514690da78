"""Run `music2image` and SIGKILL it at the N-th time it reaches POINT — the harness of the crash tests.

    python tests/helpers/kill_at.py POINT N generate --prompts-file ...

Under `accelerate launch`, KILL_RANK=R limits the kill to process R (the others run on).

POINT: decode (mid-generation), half-png (a temporary PNG half written), rename (PNG written, not renamed),
journal (PNG in place, not journaled), torn-journal (half a journal line), log (the final JSON being written).
"""

import os
import signal
import sys
from pathlib import Path

from music2image import engine, generator, outputs
from music2image.cli import main

point, target = sys.argv[1], int(sys.argv[2])
hits = 0


def reached() -> bool:
    global hits
    if os.environ.get("KILL_RANK", os.environ.get("RANK", "0")) != os.environ.get("RANK", "0"):
        return False
    hits += 1
    return hits == target


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if point == "decode":
    real_decode = engine.Engine._decode

    def decode(self, latents, dtype_name):
        if reached():
            die()
        return real_decode(self, latents, dtype_name)

    engine.Engine._decode = decode
elif point == "half-png":
    real_write = generator.atomic_write_bytes

    def write(path, data):
        if Path(path).suffix == ".png" and reached():
            Path(path).with_name(f".{Path(path).name}.{os.getpid()}.0.tmp").write_bytes(data[: len(data) // 2])
            die()
        return real_write(path, data)

    generator.atomic_write_bytes = write
elif point == "rename":
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".png") and reached():
            die()
        return real_replace(src, dst)

    outputs.os.replace = replace
elif point in ("journal", "torn-journal"):
    real_append = outputs.Journal.append

    def append(self, record):
        if record.get("type") == "image" and reached():
            if point == "torn-journal":
                with open(self.path, "ab") as handle:
                    handle.write(b'{"type": "image", "sample_idx": ')
                    handle.flush()
                    os.fsync(handle.fileno())
            die()
        return real_append(self, record)

    outputs.Journal.append = append
elif point == "log":
    real_json = generator.atomic_write_json

    def write_json(path, document):
        if reached():
            die()
        return real_json(path, document)

    generator.atomic_write_json = write_json
else:
    sys.exit(f"unknown point {point}")

sys.exit(main(sys.argv[3:]))

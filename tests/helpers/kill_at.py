"""Run `music2image` and SIGKILL it at the N-th time it reaches POINT — the harness of the crash tests.

    python tests/helpers/kill_at.py POINT N generate --prompts-file ...

Under `accelerate launch`, KILL_RANK=R limits the kill to process R (the others run on).

POINT: load (while the models load, the folder locked), decode (mid-generation), half-png (a temporary PNG half written), rename (PNG written, not renamed),
journal (PNG in place, not journaled), torn-journal (half a journal line), log (the final JSON being written).

The write points go through music2image's one write seam (`music2image.outputs.Files`, handed to `main`): each
kill happens inside the real write path, between its real steps.
"""

import os
import signal
import sys
from pathlib import Path

from music2image.cli import main
from music2image.engine import Engine
from music2image.outputs import Files

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


class KillingFiles(Files):
    def write_temporary(self, tmp, data):
        if point == "half-png" and ".png." in Path(tmp).name and reached():
            super().write_temporary(tmp, data[: len(data) // 2])
            die()
        return super().write_temporary(tmp, data)

    def replace(self, tmp, path):
        if point == "rename" and str(path).endswith(".png") and reached():
            die()
        return super().replace(tmp, path)

    def write_json(self, path, document):
        if point == "log" and reached():
            die()
        return super().write_json(path, document)

    def append_line(self, handle, line):
        if point in ("journal", "torn-journal") and line.startswith(b'{') and b'"type": "image"' in line and reached():
            if point == "torn-journal":
                super().append_line(handle, line[: len(line) // 2])
            die()
        return super().append_line(handle, line)


if point == "decode":
    real_decode = Engine.decode

    def decode(self, latents, dtype_name):
        if reached():
            die()
        return real_decode(self, latents, dtype_name)

    Engine.decode = decode
elif point == "load":
    real_load = Engine.load.__func__

    def load(cls, settings, device=None):
        engine = real_load(cls, settings, device)
        if reached():
            die()
        return engine

    Engine.load = classmethod(load)
elif point not in ("half-png", "rename", "journal", "torn-journal", "log"):
    sys.exit(f"unknown point {point}")

sys.exit(main(sys.argv[3:], files=KillingFiles()))

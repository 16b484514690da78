"""Progress a person can see anywhere: a tqdm bar on a terminal; off one (nohup, SLURM, a pipe), a log line every
`interval` seconds and at each tenth of the work, with done/total, the rate and the time left.

A disabled tqdm bar counts nothing, so a log that only sampled it said `progress: 0/500` until `finished`. Here
the count is ours, and the bar (when there is one) only draws it.

    >>> progress = Progress(500, what="images", interval=30)
    >>> for job in jobs: ...; progress.update()
    >>> progress.close()
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

log = logging.getLogger("music2image")
Item = TypeVar("Item")


class Progress:
    """`total` items, `done` of them finished before we started (a resumed run).

    bar: True a tqdm bar, False log lines, None a bar when stderr is a terminal. show=False: nothing at all (the
    other processes of a launch). interval: seconds between lines. clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, total: int, *, done: int = 0, what: str = "images", unit: str = "img",
                 bar: bool | None = None, show: bool = True, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.n, self.what, self.interval, self.clock = total, done, what, interval, clock
        self._first = done  # the rate counts only what this run did
        self._started = self._last_line = clock()
        self._last_tenth = self._tenth(done)
        use_bar = show and (sys.stderr.isatty() if bar is None else bar)
        self._lines = show and not use_bar
        self._bar = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, unit=unit, dynamic_ncols=True)

    def _tenth(self, count: int) -> int:
        return count * 10 // self.total if self.total else 10

    def update(self, step: int = 1) -> None:
        self.n += step
        if self._bar is not None:
            self._bar.update(step)
        if not self._lines:
            return
        now, tenth = self.clock(), self._tenth(self.n)
        if tenth > self._last_tenth or now - self._last_line >= self.interval:
            self._last_tenth, self._last_line = tenth, now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """`progress: 120/500 images (24%), 1.93 images/s, 3m17s left`."""
        now = self.clock() if now is None else now
        percent = 100 * self.n // self.total if self.total else 100
        text = f"progress: {self.n}/{self.total} {self.what} ({percent}%)"
        made, seconds = self.n - self._first, now - self._started
        if made > 0 and seconds > 0:
            rate = made / seconds
            text += f", {rate:.3g} {self.what}/s"
            if self.n < self.total:
                text += f", {_duration((self.total - self.n) / rate)} left"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def tracked(items: Iterable[Item], total: int, **options) -> Iterator[Item]:
    """Yield `items`, counting each one through a `Progress(total, **options)`."""
    progress = Progress(total, **options)
    try:
        for item in items:
            yield item
            progress.update()
    finally:
        progress.close()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"

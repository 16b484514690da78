"""One process, or one of the processes of an `accelerate launch` (or torchrun): who decides, who waits.

We do not schedule anything ourselves: 🤗 Accelerate starts the processes and sets up the process group; this
module only lets the run agree on decisions (the main process decides, the others follow) and fail together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ExitStatus, Music2ImageError


@dataclass(frozen=True)
class _Failure:
    """A domain error, carried between processes as plain data."""

    message: str
    exit_status: int

    def error(self) -> Music2ImageError:
        error = Music2ImageError(self.message)
        error.exit_status = ExitStatus(self.exit_status)
        error.shared = True  # every process of the launch raises it; the main process reports it
        return error


class Launch:
    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.state = None
        if self.world > 1:
            import torch
            from accelerate import PartialState

            # gloo on CPU-only machines, nccl with one GPU per process.
            self.state = PartialState(cpu=not torch.cuda.is_available())
            self.world = self.state.num_processes
        self.rank = self.state.process_index if self.state else 0

    @property
    def distributed(self) -> bool:
        return self.state is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> str:
        """Each process drives one device: `auto` or `cuda` means this process's own GPU."""
        if self.state is not None and self.state.device.type == "cuda" and requested in ("auto", "cuda"):
            return str(self.state.device)
        return requested

    def shard(self, items: list) -> list:
        """This process's share: interleaved, so the shares differ in size by at most one item (one batch)."""
        return items[self.rank :: self.world]

    def decide(self, decision: Callable[[], Any]) -> Any:
        """The main process decides; every process gets its result, or raises its error."""
        outcome = None
        if self.is_main:
            try:
                outcome = ("ok", decision())
            except Music2ImageError as exc:
                outcome = ("error", _Failure(str(exc), int(exc.exit_status)))
                if not self.distributed:
                    raise
        if self.distributed:
            from accelerate.utils import broadcast_object_list

            outcome = broadcast_object_list([outcome], from_process=0)[0]
        if outcome[0] == "error":
            self._fail(outcome[1])
        return outcome[1]

    def together(self, step: Callable[[], Any]) -> Any:
        """Every process runs `step`; if any fails, all raise (the first failure), so none waits forever."""
        try:
            result, failure = step(), None
        except Music2ImageError as exc:
            if not self.distributed:
                raise
            result, failure = None, _Failure(str(exc), int(exc.exit_status))
        failures = [f for f in self.gather(failure) if f is not None]
        if failures:
            self._fail(failures[0])
        return result

    def _fail(self, failure: _Failure):
        """Every process raises the same error. First they leave the process group together: a process that exits
        while its peer still holds a gloo/nccl connection to it can make that peer abort (SIGABRT) instead of
        exiting with our status."""
        if self.distributed:
            import torch.distributed

            self.state.wait_for_everyone()
            torch.distributed.destroy_process_group()
        raise failure.error()

    def gather(self, value: Any) -> list:
        if not self.distributed:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def wait_for_everyone(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

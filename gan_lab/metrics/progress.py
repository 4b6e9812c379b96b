"""Progress of the long stages of an evaluation: generation, feature extraction, k-NN.

On a terminal, a tqdm bar (the library Lightning's own progress bar uses) with the rate and
an ETA; elsewhere (a log file, a batch job) no bar, so logs are not flooded with carriage
returns. Either way, one log line per stage when it ends: what, how many, time, rate.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def bars_wanted(enabled: bool | None = None) -> bool:
    """Whether to draw bars: ``enabled`` if given, else whether stderr is a terminal."""
    if enabled is not None:
        return enabled
    return sys.stderr.isatty()


class Stage:
    """``with Stage("generated images (inception)", 10000, "img") as stage: stage(n)``.

    Calling the stage with a count advances it (the ``progress`` callback of
    :func:`gan_lab.metrics.compute.extract` and :func:`gan_lab.metrics.prdc.prdc`).
    ``bar``: draw a bar (None: only on a terminal; False: never).
    """

    def __init__(self, what: str, total: int, unit: str = "img", bar: bool | None = None) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.done = 0
        self.bar = None
        if bars_wanted(bar):
            self.bar = tqdm(total=total, desc=what, unit=unit, dynamic_ncols=True, leave=False)
        self.start = time.perf_counter()

    def __call__(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def __enter__(self) -> Stage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.close()
        if exc_type is None:
            took = time.perf_counter() - self.start
            log.info("%s: %d %s in %.1f s (%.1f %s/s)", self.what, self.done, self.unit, took,
                     self.done / max(took, 1e-9), self.unit)  # fmt: skip

"""The measurement library of ``python -m gan_lab.bench`` (the command: gan_lab.commands.bench).

- :mod:`~gan_lab.gan.bench.setup`: the benchmarked settings, the machine, clocks and peak memory
- :mod:`~gan_lab.gan.bench.training`: Lightning against a plain loop, largest batch, profile
- :mod:`~gan_lab.gan.bench.throughput`: data path, extractors and validation, FLOPs
- :mod:`~gan_lab.gan.bench.sections`: :func:`run`, the sections chosen in ``conf/bench.yaml``
"""

from gan_lab.gan.bench.sections import run

__all__ = ["run"]

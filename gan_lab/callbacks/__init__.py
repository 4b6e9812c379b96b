"""Callbacks that hook the Trainer: sample grids and run statistics."""

from gan_lab.callbacks.run_stats import RunStats
from gan_lab.callbacks.sample_grid import SampleGrid

__all__ = ["RunStats", "SampleGrid"]

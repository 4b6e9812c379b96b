"""Callbacks that hook the Trainer: checkpoints, sample grids and run statistics."""

from gan_lab.gan.callbacks.checkpointing import AtomicCheckpointIO, BestCheckpoint, LastCheckpoint
from gan_lab.gan.callbacks.run_stats import RunStats
from gan_lab.gan.callbacks.sample_grid import SampleGrid

__all__ = ["AtomicCheckpointIO", "BestCheckpoint", "LastCheckpoint", "RunStats", "SampleGrid"]

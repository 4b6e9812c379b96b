"""The training sampler: a seeded shuffle per epoch that can resume in the middle of an epoch.

A resumed run must see exactly the batches an uninterrupted run would have seen. Lightning
restores its loop counters from a checkpoint but restarts the dataloader from its first
batch unless the loader can resume; torch's RandomSampler also draws its permutation from
the global RNG, so the order would change on resume anyway.

:class:`ResumableSampler` is a :class:`~torch.utils.data.DistributedSampler` (so Lightning's
DDP setup keeps it instead of wrapping it, and calls ``set_epoch`` each epoch): the order of
epoch ``e`` is ``randperm(n)`` seeded by ``seed + e``, split over ranks as DistributedSampler
does, and :meth:`skip_batches` drops the first batches of the next epoch iteration (the ones
a checkpoint had already trained on). The position itself is kept by the datamodule's
``state_dict`` (gan_lab.data.loaders), from the trainer's batch counter, because the iterator
runs ahead of training (Lightning prefetches a batch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """Seeded per-epoch shuffle over ``num_replicas`` ranks that can skip consumed batches."""

    def __init__(
        self, dataset: Sized, batch_size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        # drop_last: every rank gets the same number of samples without repeating any.
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self._skip_batches = 0

    def skip_batches(self, batches: int) -> None:
        """Make the next iteration start after ``batches`` batches of the current epoch."""
        self._skip_batches = max(0, int(batches))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self._skip_batches = self._skip_batches * self.batch_size, 0  # one iteration only
        return iter(indices[skip:])

"""How the in-memory images reach training: the loaders, their resumable position in the data,
and the scaling of uint8 batches to float [-1, 1] on the device.

:class:`ResumableLoaders` is the part of :class:`~gan_lab.data.base.InMemoryImageDataModule`
that builds its loaders (a :class:`~gan_lab.data.sampling.ResumableSampler` for training) and
keeps the position a checkpoint stores (``state_dict``/``load_state_dict``).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from gan_lab.data.dataset import TensorImageDataset, passthrough_collate
from gan_lab.data.sampling import ResumableSampler
from gan_lab.data.transforms import to_float_images
from gan_lab.errors import UserError


class ResumableLoaders:
    """The datamodule's loaders and checkpointed position, mixed into InMemoryImageDataModule.

    Uses the datamodule's ``trainer``, ``title``, ``batch_size``, ``seed``, ``num_workers``,
    ``train_images()`` and ``val_images()``.
    """

    # Batches of the current epoch a resumed checkpoint had already trained on.
    _resume_batches: int = 0
    _resume_epoch: int | None = None

    def _loader(self, images: torch.Tensor, train: bool) -> DataLoader:
        dataset = TensorImageDataset(images)
        trainer = self.trainer  # set by Lightning; None outside a Trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        if train:
            # Seeded per epoch and resumable mid-epoch (see gan_lab.data.sampling).
            sampler = ResumableSampler(
                dataset, self.batch_size, num_replicas=world, rank=rank, seed=self.seed
            )
            if self._resume_epoch is not None:
                # Lightning calls set_epoch only after it made the iterator; worker processes
                # would already have drawn their indices from epoch 0's order.
                sampler.set_epoch(int(self._resume_epoch))
            sampler.skip_batches(self._resume_batches)
            self._resume_batches, self._resume_epoch = 0, None
        elif world > 1:
            # Rank r gets samples r, r + W, ... with no padding repeats: N ranks validate on
            # exactly the images (and latents, see GANModule.validation_step) of one process.
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=world, rank=rank, shuffle=False
            )
        else:
            sampler = None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            collate_fn=passthrough_collate,
            persistent_workers=self.num_workers > 0,
            # Its own generator: otherwise every new iterator draws its base seed from the
            # global RNG, and a resumed run (which makes one more iterator) would drift.
            generator=torch.Generator().manual_seed(self.seed),
            # No pin_memory: uint8 batches are tiny and pinning each would cost more than
            # the copy it speeds up.
        )

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Where training is in the data: the epoch and the batches of it already trained on.

        Lightning stores this in every checkpoint. It comes from the trainer's counters, not
        the sampler (the loader runs ahead of training). gan_lab saves at a batch start
        (the next batch counted as ready, not completed) or at the end of training (where
        Lightning has already counted the last epoch as done, finished or not).
        """
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return {}
        batches = trainer.fit_loop.epoch_loop.batch_progress.current
        epochs_done = trainer.fit_loop.epoch_progress.current.completed
        if batches.ready > batches.completed:  # at a batch start: this epoch goes on
            return {"epoch": epochs_done, "batches_done": batches.completed}
        if batches.completed >= trainer.num_training_batches:  # the epoch ran to its end
            return {"epoch": epochs_done, "batches_done": 0}
        return {"epoch": epochs_done - 1, "batches_done": batches.completed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next train loader start after the batches the checkpoint trained on."""
        self._resume_batches = int(state_dict.get("batches_done", 0))
        self._resume_epoch = state_dict.get("epoch")

    def train_dataloader(self) -> DataLoader:
        images = self.train_images()
        if len(images) < self.batch_size:
            raise UserError(
                f"{self.title} has {len(images)} training images, fewer than data.batch_size="
                f"{self.batch_size} (the last partial batch is dropped); lower data.batch_size"
            )
        return self._loader(images, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_images(), train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Scale uint8 batches to float [-1, 1] after they reached the device."""
        if isinstance(batch, torch.Tensor) and batch.dtype == torch.uint8:
            return to_float_images(batch)
        return batch

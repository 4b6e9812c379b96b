"""LSUN bedrooms: the official lmdb (``bedroom_train_lmdb/``), read with the lmdb package.

The full set is about 3 million images; ``max_images`` (default 200,000, 2.4 GB as 64x64
uint8) bounds how many are decoded into the in-memory cache, taken in the lmdb's key order.
A fixed held-out subset (``data.split_seed``, ``data.held_out``: 10,000 of the default
200,000 images) plays the test split (LSUN's own validation set has 300 images, too few for
FID). There is no torchvision download and no registry copy: get the lmdb with
LSUN's download script (github.com/fyu/lsun) into data_dir or a mirror folder.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import torch

from gan_lab.data.base import InMemoryImageDataModule
from gan_lab.data.decode import decode_bytes, quiet_image_io
from gan_lab.data.folder import held_out_split
from gan_lab.data.sources import Loaded, Source
from gan_lab.data.transforms import fit_image
from gan_lab.data.verify import one_line
from gan_lab.errors import UserError

log = logging.getLogger(__name__)


class LSUNBedroomDataModule(InMemoryImageDataModule):
    """LSUN bedroom_train, the first ``max_images`` images, resized and center-cropped."""

    name: ClassVar[str] = "lsun_bedroom"
    title: ClassVar[str] = "LSUN bedrooms"
    lmdb_folder: ClassVar[str] = "bedroom_train_lmdb"

    default_image_size: ClassVar[int] = 64
    default_channels: ClassVar[int] = 3
    has_official_test_split: ClassVar[bool] = False

    def __init__(self, data_dir: str, max_images: int = 200_000, **kwargs: Any) -> None:
        """``max_images``: how many lmdb records to decode; ``kwargs`` are the base class's."""
        super().__init__(data_dir, **kwargs)
        if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 2:
            raise UserError(f"data.max_images must be an integer >= 2, got {max_images!r}")
        self.max_images = max_images

    @property
    def cache_key(self) -> str:
        return f"{self.name}-{self.max_images}"

    def find_local(self, root: Path, kind: str) -> Source | str:
        folder = root / self.lmdb_folder
        data = folder / "data.mdb"
        if not data.is_file():
            return f"no {self.lmdb_folder}/data.mdb"
        return Source(kind=kind, location=folder, files={"data": data}, layout="lmdb")

    def source_digest(self, source: Source, scratch: Path) -> str:
        # Size and mtime of a 40 GB lmdb, plus how many images are taken: re-hashing it all
        # on every run would cost minutes for no gain.
        return hashlib.sha256(f"{source.signature()}|{self.max_images}".encode()).hexdigest()

    def _keys(self, source: Source) -> tuple[Any, list[bytes], int]:
        """(open lmdb env, the first ``max_images`` keys in key order, total records).

        The lmdb is read directly, as torchvision's LSUNClass does (same options, same key
        order), rather than through LSUNClass: that pickles its key list into
        ``./_cache_<path letters>`` in the working directory, which would need a chdir (and a
        chdir breaks every relative path, such as the default ``data_dir``). The key list is
        not cached: it is read only when the decoded images' cache
        is missing or stale, by one cursor walk over the first ``max_images`` keys.

        Values are decoded by :func:`decode_bytes`: torchvision's decoder (JPEG and WebP,
        the formats LSUN copies come in; faster than PIL and parallel across the threads),
        PIL for anything it refuses.
        """
        try:
            import lmdb
        except ImportError as err:
            raise UserError("LSUN needs the lmdb package: pip install lmdb") from err
        path = source.location.resolve()
        try:
            env = lmdb.open(str(path), max_readers=1, readonly=True, lock=False,
                            readahead=False, meminit=False)  # fmt: skip
            with env.begin(write=False) as txn:
                total = txn.stat()["entries"]
                cursor = txn.cursor().iternext(keys=True, values=False)
                keys = list(itertools.islice(cursor, self.max_images))
        except Exception as err:
            problem = f"not a readable lmdb ({one_line(err)})"
            raise self.bad_file(source.files["data"], problem) from err
        return env, keys, total

    def load_source(self, source: Source, scratch: Path) -> Loaded:
        env, keys, total = self._keys(source)
        n = len(keys)
        out = torch.empty((n, self.channels, self.image_size, self.image_size), dtype=torch.uint8)
        ok = torch.zeros(n, dtype=torch.bool)

        def work(i: int) -> None:
            with env.begin(write=False) as txn:
                blob = txn.get(keys[i])
            try:
                out[i] = fit_image(decode_bytes(blob, self.channels), self.image_size,
                                   self.channels)  # fmt: skip
                ok[i] = True
            except Exception:  # a damaged record is skipped, like a bad file in a folder
                pass

        try:
            with quiet_image_io(), ThreadPoolExecutor() as pool:
                list(pool.map(work, range(n)))
        finally:
            env.close()
        if not ok.any():
            raise self.bad_file(source.files["data"], "none of its records decodes as an image")
        if not ok.all():
            log.warning("%s: skipped %d undecodable records", self.title, int((~ok).sum()))
        digest = self.source_digest(source, scratch)
        return Loaded(digest=digest, images={"all": out[ok]}, info={"records": total})

    def split_images(self, images: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return held_out_split(images["all"], self.held_out, self.held_out_fraction, self.split_seed)

    def how_to_provide(self) -> str:
        return (
            f"downloading {self.lmdb_folder} with LSUN's script (github.com/fyu/lsun) into "
            "data.data_dir (GAN_LAB_DATA_DIR) or a folder of GAN_LAB_DATA_MIRRORS"
        )

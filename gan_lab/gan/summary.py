"""summary.json: the one file per run that reports and sweeps read."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gan_lab.io import atomic_write


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_summary(path: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write ``summary`` as JSON atomically (a reader never sees a half-written file)."""
    path = Path(path)
    blob = (json.dumps(_jsonable(summary), indent=2, sort_keys=False) + "\n").encode()
    atomic_write(path, lambda f: f.write(blob))
    return path


def read_summary(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)

"""summary.json: the one file per run that reports and sweeps read."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".summary.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(_jsonable(summary), f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_summary(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)

"""Plausible mistakes get one line and damage nothing.

A table of bad inputs to every ``gan_lab.<verb>``: configs, arguments, corrupt or missing
files, bad folders and checkpoints. Each must exit non-zero, print exactly one ``error:``
line on stderr (no traceback), and leave every file that existed before byte-identical
(a finished run's summary.json and checkpoints, a damaged run, the data caches).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import SHARED_DATA

# (id, command, arguments); "{w}" is the folder of prepared inputs (the "world", whose files
# must not change), "{o}" a folder for anything a case may write.
CASES = [
    # ---- training configs
    ("unknown-dataset", "train", ["data=nope"]),
    ("unknown-key", "train", ["trainer.max_stepz=5"]),
    ("wrong-type", "train", ["trainer.max_steps=abc"]),
    ("unparsable-override", "train", ["data.batch_size=[1,"]),
    ("negative-lr", "train", ["optimizer.lr=-1"]),
    ("beta-above-one", "train", ["optimizer.beta1=1.5"]),
    ("n-disc-zero", "train", ["module.n_disc=0"]),
    ("batch-size-zero", "train", ["data.batch_size=0"]),
    ("negative-latent-dim", "train", ["model.latent_dim=-5"]),
    ("two-channels", "train", ["data.channels=2"]),
    ("bad-precision", "train", ["trainer.precision=17"]),
    ("bad-nonfinite-policy", "train", ["module.on_nonfinite=maybe"]),
    ("ema-decay-above-one", "train", ["module.ema_decay=2"]),
    ("checkpoint-interval-zero", "train", ["callbacks.last_checkpoint.every_n_generator_steps=0"]),
    ("bad-wandb-mode", "train", ["logger.mode=bogus"]),
    ("unknown-extractor", "train", ["metrics.extractors=[nope]"]),
    ("output-dir-is-a-file", "train", ["hydra.run.dir={w}/a_file/run"]),
    ("sweep-dir-is-a-file", "train", ["-m", "seed=0,1", "hydra.sweep.dir={w}/a_file/sweep"]),
    # ---- data
    ("folder-missing", "train", ["data=folder", "data.root={w}/no_such_folder"]),
    ("folder-empty", "train", ["data=folder", "data.root={w}/empty"]),
    ("folder-no-images", "train", ["data=folder", "data.root={w}/text_only"]),
    ("folder-corrupt-images", "train", ["data=folder", "data.root={w}/corrupt_images"]),
    (
        "mnist-file-corrupt",
        "train",
        [
            "data.data_dir={w}/bad_mnist",
            "paths.data_mirrors=",
            "data.download=false",
            "data.registry=false",
        ],
    ),  # fmt: skip
    # ---- resume and checkpoints
    ("resume-not-a-run", "train", ["resume={w}/empty"]),
    ("resume-truncated-checkpoint", "train", ["resume={w}/truncated_run"]),
    ("resume-with-multirun", "train", ["-m", "resume={w}/run"]),
    ("ckpt-path-garbage", "train", ["ckpt_path={w}/garbage.ckpt", "hydra.run.dir={o}/new_run"]),
    ("folder-root-not-given", "train", ["data=folder"]),
    ("eval-no-checkpoint", "eval", ["ckpt_path={w}/no_such.ckpt"]),
    ("eval-truncated-checkpoint", "eval", ["ckpt_path={w}/truncated_run"]),
    ("eval-garbage-checkpoint", "eval", ["ckpt_path={w}/garbage.ckpt"]),
    ("eval-missing-ckpt-path", "eval", []),
    ("sample-zero-images", "sample", ["ckpt_path={w}/run", "n=0"]),
    ("sample-bad-out", "sample", ["ckpt_path={w}/run", "out={w}/grid.txt"]),
    ("sample-unknown-key", "sample", ["ckpt_path={w}/run", "nosuchkey=1"]),
    ("sample-truncated-checkpoint", "sample", ["ckpt_path={w}/truncated_run", "out={w}/g.png"]),
    # ---- the other commands
    ("fid-missing-folder", "fid", ["{w}/no_such_folder", "{w}/empty"]),
    ("fid-empty-folder", "fid", ["{w}/empty", "{w}/corrupt_images"]),
    ("fid-bad-extractor", "fid", ["--extractor", "bogus", "{w}/empty", "{w}/empty"]),
    ("fid-no-arguments", "fid", []),
    ("report-missing-dir", "report", ["{w}/no_such_folder"]),
    ("report-no-runs", "report", ["{w}/empty"]),
    ("evaluators-unknown-dataset", "evaluators", ["train", "data=nope"]),
    ("evaluators-no-command", "evaluators", []),
    ("bench-unknown-key", "bench", ["bogus=1"]),
]


def _make_world(root: Path, run_env: dict[str, str], repo_root: Path) -> None:
    """A finished run, a damaged copy of it, bad folders and files, a corrupt MNIST copy."""
    run = root / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.train", "experiment=smoke", "trainer.max_steps=4",
         "metrics=none", "logger=none", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={run}"],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    truncated = root / "truncated_run"
    shutil.copytree(run, truncated)
    ckpt = truncated / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    (root / "empty").mkdir()
    (root / "text_only").mkdir()
    (root / "text_only" / "notes.txt").write_text("not an image\n")
    (root / "corrupt_images").mkdir()
    for i in range(3):
        (root / "corrupt_images" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff garbage" * (i + 1))
    (root / "garbage.ckpt").write_text("this is not a checkpoint\n")
    (root / "a_file").write_text("a file where a folder is expected\n")
    bad = root / "bad_mnist"
    bad.mkdir()
    for src in sorted((SHARED_DATA / "mnist").glob("*.gz")):
        shutil.copy(src, bad / src.name)
    images = bad / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:5000]))  # cut short


def _hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file; files that vanish while walking (another case's scratch files)
    are skipped: only files that existed before a case and still do are compared."""
    out = {}
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                except FileNotFoundError:
                    continue
    return out


def _scratch(path: str) -> bool:
    """Temporary files a running case makes and removes (data preparation, atomic writes)."""
    return "/.prepare-" in path or path.endswith(".tmp")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, shared_data, session_data_dir, repo_root):
    """Run every case (two at a time: the machine has two cores); {id: outcome}."""
    world = tmp_path_factory.mktemp("world")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(GAN_LAB_DATA_DIR=str(session_data_dir), GAN_LAB_DATA_MIRRORS=str(shared_data),
               HYDRA_FULL_ERROR="0")  # fmt: skip
    _make_world(world, env, repo_root)
    cwd = tmp_path_factory.mktemp("cwd")  # where runs without hydra.run.dir would go
    guarded = (world, session_data_dir / "cache")

    def run(case: tuple[str, str, list[str]]) -> dict:
        case_id, verb, args = case
        before = _hashes(*guarded)
        proc = subprocess.run(
            [sys.executable, "-m", f"gan_lab.{verb}", *(a.format(w=world, o=cwd) for a in args)],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        after = _hashes(*guarded)
        changed = sorted(k for k in before if before[k] != after.get(k) and not _scratch(k))
        return {"id": case_id, "code": proc.returncode, "stderr": proc.stderr, "changed": changed}

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = {r["id"]: r for r in pool.map(run, CASES)}
    unchanged = sum(not r["changed"] for r in results.values())
    print(json.dumps({"cases": len(results), "left_every_file_unchanged": unchanged}))
    return results


def test_the_table_is_large_enough():
    assert len(CASES) >= 25
    assert {verb for _, verb, _ in CASES} >= {"train", "eval", "sample", "fid", "report",
                                              "evaluators", "bench"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_bad_input_is_one_line_and_damages_nothing(case_id, outcomes):
    outcome = outcomes[case_id]
    stderr = outcome["stderr"]
    assert outcome["code"] not in (0, None), stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    assert len(lines[0]) > len("error: ") + 20  # says what is wrong, not just that it is
    assert outcome["changed"] == [], f"changed files: {outcome['changed']}"

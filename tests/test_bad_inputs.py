"""Plausible mistakes get one line and damage nothing.

A table of bad inputs to every ``gan_lab.<verb>``: configs, arguments, corrupt or missing
files, bad folders and checkpoints. Each must exit non-zero, print exactly one ``error:``
line on stderr (no traceback), and leave every file that existed before byte-identical
(a finished run's summary.json and checkpoints, a damaged run, the data caches).

Where a case runs: the ones that fail in a command's argument checks, before it imports
torch or does any work, in this process through the command's entry function
(``gan_lab.commands.<verb>.main``, ``sys.argv`` set); a few end to end as a user runs them,
``python -m gan_lab.<verb>`` in a new process; the others (failures while loading data,
checkpoints or building the run) in processes forked from one that has made their imports
once (tests/forked_cases.py).
"""

from __future__ import annotations

import gzip
import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_DATA, subprocess_env
from forked_cases import changed_files
from forked_cases import hashes as _hashes

TESTS_DIR = Path(__file__).resolve().parent

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
    # A loss that turns NaN in training (fused Adam's device-side skip, read at a log step).
    (
        "diverging-loss",
        "train",
        [
            "experiment=smoke",
            "metrics=none",
            "logger=none",
            "optimizer.lr=1e30",
            "loss=lsgan",
            "hydra.run.dir={o}/diverged",
        ],
    ),
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


# Cases that fail in the command's own argument checks (overrides, the config, resume=, the
# output folder), before any work (most before torch is imported): in this process (_call).
IN_PROCESS = {
    "unknown-dataset", "unknown-key", "unparsable-override", "output-dir-is-a-file",
    "sweep-dir-is-a-file", "resume-not-a-run", "resume-truncated-checkpoint",
    "resume-with-multirun", "folder-root-not-given", "eval-missing-ckpt-path",
    "sample-unknown-key", "fid-no-arguments", "evaluators-no-command", "bench-unknown-key",
}  # fmt: skip
# Run as a user runs them, each in a new process: a bad setting found while building the run,
# a corrupt dataset found while loading it, a damaged checkpoint handed to gan_lab.eval.
END_TO_END = {"n-disc-zero", "mnist-file-corrupt", "eval-truncated-checkpoint"}
# What each command's main() calls once its arguments are checked: an in-process case that
# gets there belongs among the process cases.
WORK = {"train": "train", "eval": "eval_checkpoint", "sample": "sample", "fid": "evaluate_sets",
        "report": "make_report", "evaluators": "train", "bench": "run"}  # fmt: skip


@dataclass(frozen=True)
class World:
    root: Path  # the prepared inputs ("{w}"), whose files must not change
    cwd: Path  # where cases run ("{o}"): runs without hydra.run.dir would go there
    env: dict[str, str]  # the environment of a process case
    guarded: tuple[Path, ...]  # folders no case may change a file of

    def args(self, args: list[str]) -> list[str]:
        return [a.format(w=self.root, o=self.cwd) for a in args]


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data, session_data_dir, repo_root) -> World:
    root = tmp_path_factory.mktemp("world")
    env = {**subprocess_env(session_data_dir), "GAN_LAB_DATA_MIRRORS": str(shared_data)}
    _make_world(root, env, repo_root)
    cwd = tmp_path_factory.mktemp("cwd")
    return World(root, cwd, env, (root, session_data_dir / "cache"))


@pytest.fixture(scope="module")
def outcomes(world, tmp_path_factory) -> dict[str, dict]:
    """Run every process case (two at a time: the machine has two cores); {id: outcome}."""
    cases = [c for c in CASES if c[0] not in IN_PROCESS]
    forked = [c for c in cases if c[0] not in END_TO_END]
    scratch = tmp_path_factory.mktemp("forked")

    def run_forked() -> dict[str, dict]:
        spec = {
            "cases": [{"id": i, "module": f"gan_lab.{verb}", "args": world.args(args),
                       "cwd": str(world.cwd)} for i, verb, args in forked],
            "guarded": [str(p) for p in world.guarded],
            "out": str(scratch / "results.json"),
        }  # fmt: skip
        (scratch / "spec.json").write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, str(TESTS_DIR / "forked_cases.py"), str(scratch / "spec.json")],
            cwd=world.cwd, env=world.env, capture_output=True, text=True, timeout=1800,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0 and not proc.stderr, proc.stderr[-3000:]
        return json.loads((scratch / "results.json").read_text())

    def run(case: tuple[str, str, list[str]]) -> dict:
        case_id, verb, args = case
        before = _hashes(*world.guarded)
        proc = subprocess.run(
            [sys.executable, "-m", f"gan_lab.{verb}", *world.args(args)],
            cwd=world.cwd, env=world.env, capture_output=True, text=True, timeout=900,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        changed = changed_files(before, _hashes(*world.guarded))
        return {"id": case_id, "code": proc.returncode, "stderr": proc.stderr, "changed": changed}

    with ThreadPoolExecutor(max_workers=2) as pool:
        from_forks = pool.submit(run_forked)
        results = {r["id"]: r for r in map(run, [c for c in cases if c[0] in END_TO_END])}
        results.update(from_forks.result())
    unchanged = sum(not r["changed"] for r in results.values())
    print(json.dumps({"cases": len(results), "left_every_file_unchanged": unchanged}))
    return results


@contextmanager
def _like_a_fresh_process() -> Iterator[list[str]]:
    """Logging and warnings as in a new Python process, for the time of an in-process case.

    Without it, pytest would take what a user sees on stderr: log records (with no handler
    configured, Python prints warnings and errors on stderr; a command may configure its
    own) and warnings (shown per Python's default filters). Yields the warning lines."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    shown: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                             ResourceWarning):  # fmt: skip
                warnings.simplefilter("ignore", category)
            yield shown
        shown += [warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                  for w in caught]  # fmt: skip
    finally:
        for handler in root.handlers[:]:  # what the command configured (logging.basicConfig)
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def _call(case: tuple[str, str, list[str]], world: World, monkeypatch, capfd) -> dict:
    """Run a case through ``gan_lab.commands.<verb>.main`` in this process."""
    case_id, verb, args = case
    command = importlib.import_module(f"gan_lab.commands.{verb}")

    def got_past_the_checks(*_args, **_kwargs):
        raise AssertionError(f"{case_id} gets past the argument checks: not an IN_PROCESS case")

    monkeypatch.setattr(command, WORK[verb], got_past_the_checks)
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    for key in ("GAN_LAB_DATA_DIR", "GAN_LAB_DATA_MIRRORS", "HYDRA_FULL_ERROR"):
        monkeypatch.setenv(key, world.env[key])
    monkeypatch.chdir(world.cwd)
    monkeypatch.setattr(sys, "argv", [f"gan_lab.{verb}", *world.args(args)])
    before = _hashes(*world.guarded)
    capfd.readouterr()
    with _like_a_fresh_process() as shown, pytest.raises(SystemExit) as exited:
        command.main()
    stderr = capfd.readouterr().err + "".join(shown)
    code = exited.value.code
    if not isinstance(code, int):  # sys.exit("message"): printed, status 1
        stderr, code = (stderr + f"{code}\n", 1) if code is not None else (stderr, 0)
    changed = changed_files(before, _hashes(*world.guarded))
    return {"id": case_id, "code": code, "stderr": stderr, "changed": changed}


def test_the_table_is_large_enough():
    assert len(CASES) >= 25
    assert {verb for _, verb, _ in CASES} >= {"train", "eval", "sample", "fid", "report",
                                              "evaluators", "bench"}  # fmt: skip
    ids = {case_id for case_id, _, _ in CASES}
    assert len(ids) == len(CASES) and ids >= IN_PROCESS | END_TO_END
    assert not IN_PROCESS & END_TO_END


@pytest.mark.slow
@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_bad_input_is_one_line_and_damages_nothing(case_id, world, request, monkeypatch, capfd):
    if case_id in IN_PROCESS:
        case = next(c for c in CASES if c[0] == case_id)
        outcome = _call(case, world, monkeypatch, capfd)
    else:
        outcome = request.getfixturevalue("outcomes")[case_id]
    stderr = outcome["stderr"]
    assert outcome["code"] not in (0, None), stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    assert len(lines[0]) > len("error: ") + 20  # says what is wrong, not just that it is
    assert outcome["changed"] == [], f"changed files: {outcome['changed']}"

"""Run many ``python -m gan_lab.<verb> ARGS`` cases as processes that share one start-up.

``python tests/forked_cases.py SPEC.json`` imports what the commands import (torch,
Lightning, Hydra, W&B, gan_lab: about 10 s on a small CPU) once, then runs each case of the
spec in a process forked from that state, with its own stdout, stderr, working directory and
exit status, as ``python -m`` would run it: ``sys.argv``, ``__main__``, an uncaught exception
printed with its traceback (exit 1), ``sys.exit(code)``, atexit handlers at the end. Anything
the imports printed on stderr is put before each case's stderr, where a fresh process would
have printed it. Nothing but importing happens before a fork (no torch threads exist yet).

SPEC.json: ``{"cases": [{"id", "module", "args", "cwd"}], "guarded": [folders], "out": path}``.
Writes ``out``: ``{id: {"id", "code", "stderr", "changed"}}``, where ``changed`` lists the files
under the guarded folders that existed before the case and differ (or vanished) after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def hashes(*roots: Path) -> dict[str, str]:
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


def scratch(path: str) -> bool:
    """Temporary files a running case makes and removes (data preparation, atomic writes)."""
    return "/.prepare-" in path or path.endswith(".tmp")


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before if before[k] != after.get(k) and not scratch(k))


def _child(case: dict, err_path: str) -> None:
    """In the forked process: run the case as ``python -m`` would, then exit (never returns)."""
    import atexit
    import runpy
    import traceback

    code = 1
    try:
        os.chdir(case["cwd"])
        out_fd = os.open(os.devnull, os.O_WRONLY)
        err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null_in = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_in, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        sys.argv = [case["module"], *case["args"]]
        sys.path[0] = os.getcwd()  # python -m puts the working directory first, not this folder
        try:
            runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            if exit_.code is None or isinstance(exit_.code, int):
                code = exit_.code or 0
            else:  # sys.exit("message"): printed, status 1
                print(exit_.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        atexit._run_exitfuncs()  # what interpreter shutdown runs (logging.shutdown, W&B)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def run_cases(cases: list[dict], guarded: list[Path], preamble: str) -> dict[str, dict]:
    results = {}
    # Not a TemporaryDirectory: its clean-up is an atexit hook, which a child would run.
    tmp = tempfile.mkdtemp()
    try:
        for case in cases:
            err_path = os.path.join(tmp, f"{len(results)}.stderr")
            before = hashes(*guarded)
            pid = os.fork()
            if pid == 0:
                _child(case, err_path)
            _, status = os.waitpid(pid, 0)
            after = hashes(*guarded)
            code = os.waitstatus_to_exitcode(status)
            stderr = preamble + Path(err_path).read_text(errors="replace")
            results[case["id"]] = {"id": case["id"], "code": code, "stderr": stderr,
                                   "changed": changed_files(before, after)}  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    # The imports every case would make, once, with what they print kept as each case's.
    with tempfile.TemporaryFile("w+") as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import lightning.pytorch.loggers  # noqa: F401
            import torch  # noqa: F401
            import wandb  # noqa: F401

            import gan_lab.commands.bench  # noqa: F401
            import gan_lab.commands.eval  # noqa: F401
            import gan_lab.commands.evaluators  # noqa: F401
            import gan_lab.commands.fid  # noqa: F401
            import gan_lab.commands.report  # noqa: F401
            import gan_lab.commands.sample  # noqa: F401
            import gan_lab.commands.train  # noqa: F401
            import gan_lab.gan.fit  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        preamble = captured.read()
    guarded = [Path(p) for p in spec["guarded"]]
    results = run_cases(spec["cases"], guarded, preamble)
    Path(spec["out"]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()

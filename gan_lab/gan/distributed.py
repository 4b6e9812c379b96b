"""DDP under Hydra: child ranks re-run exactly this job, in this job's directory.

Lightning starts ranks 1..N-1 by re-running the command line (``_hydra_subprocess_cmd``).
Under ``-m`` that command line is the whole sweep, so every child would launch a sweep of its
own, and in every mode the child's run directory comes from ``hydra.run.dir``, not from the
job's actual output directory. We replace that one function: the child gets the job's own
overrides (``hydra.overrides.task``) and ``hydra.run.dir`` = the job's output directory, in
run mode, without writing a second ``.hydra`` folder.

Lightning also leaves the launching process in a distributed state after ``fit``: the process
group, ``LOCAL_RANK``/``MASTER_PORT``/... in ``os.environ`` (after which it believes that an
outside launcher made the processes, and the next job of a sweep waits for ranks nobody
started) and a reduced thread count. :func:`isolated_job` undoes that after every job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
from lightning.pytorch.strategies.launchers import subprocess_script as trainer_launcher

from gan_lab.config import hydra_quoted


def job_subprocess_cmd(local_rank: int) -> tuple[Sequence[str], str]:
    """The command (and cwd) that starts rank ``local_rank`` of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hydra_cfg = HydraConfig.get()
    if __main__.__spec__ is None:  # run as a script path
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(hydra_cfg.overrides.task)
    command += [
        f"hydra.run.dir={hydra_quoted(hydra_cfg.runtime.output_dir)}",  # may hold '=' or ','
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def use_job_subprocess_cmd() -> None:
    """Make Lightning's subprocess launchers start child ranks with :func:`job_subprocess_cmd`.

    Both the Fabric launcher and the Trainer's (which imports the function by name) are set.
    """
    for launcher in (fabric_launcher, trainer_launcher):
        if not hasattr(launcher, "_hydra_subprocess_cmd"):
            raise RuntimeError(f"{launcher.__name__} has no _hydra_subprocess_cmd to replace")
        launcher._hydra_subprocess_cmd = job_subprocess_cmd


# What Lightning's launcher and DDP setup write into the launching process's environment.
DDP_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE",
                "OMP_NUM_THREADS")  # fmt: skip


@contextmanager
def isolated_job() -> Iterator[None]:
    """Run one training job; afterwards drop its process group, DDP env and thread count.

    Only in the process that launched the ranks: a child rank exits after its job anyway.
    """
    launcher = "LOCAL_RANK" not in os.environ
    saved_env = {key: os.environ.get(key) for key in DDP_ENV_KEYS}
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if launcher:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            torch.set_num_threads(threads)

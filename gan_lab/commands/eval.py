"""Evaluate a checkpoint: ``python -m gan_lab.eval ckpt_path=<file.ckpt or run dir> [overrides]``.

Generates ``metrics.num_samples`` images (10,000 by default: the sound protocol) and scores them
against as many held-out real images with the metrics of ``conf/metrics/``; writes
``<run dir>/eval.json`` (and ``out=`` if given) and prints it. Runs on CPU or CUDA.

When the held-out set holds fewer images, that many are generated and compared (a warning
says so) and ``metrics_protocol`` records the counts actually compared; the label is "sound"
only for at least 10,000. A held-out set too small for a metric is a one-line error.

The real images are the first ``metrics.num_samples`` of the held-out set that the data config
stored in the checkpoint fixes (the official test split, or a folder's or LSUN's fixed subset,
disjoint from the training images): nothing is re-split. ``metrics_protocol.held_out`` records
that set's sha256, and eval warns when it differs from the one in the training run's
``summary.json`` (the data changed since).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gan_lab.commands.cli import check_composes, run_user_errors_as_one_line
from gan_lab.config import CONF_DIR
from gan_lab.errors import find_user_error
from gan_lab.gan.evaluate import evaluate
from gan_lab.gan.summary import write_summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def eval_checkpoint(cfg: DictConfig) -> None:
    try:
        result = evaluate(cfg)
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr, flush=True)
        sys.exit(2)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    write_summary(run_dir / "eval.json", result)
    if cfg.out:
        write_summary(cfg.out, result)
    print(json.dumps(result, indent=1))


def main() -> None:
    run_user_errors_as_one_line(lambda: check_composes(sys.argv[1:], config_name="eval"))
    eval_checkpoint()


if __name__ == "__main__":
    main()

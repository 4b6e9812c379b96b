"""Train and list the domain classifiers that the ``domain`` metrics use.

    python -m gan_lab.evaluators train data=mnist [--force]
    python -m gan_lab.evaluators list

``train`` trains (or, without ``--force``, reuses) the cached classifier of a dataset and prints
its record as JSON: held-out test accuracy, epochs, seconds, where it is cached.
"""

from __future__ import annotations

import json
import logging
import sys

from gan_lab.commands.cli import OneLineArgumentParser, run_user_errors_as_one_line
from gan_lab.config import datamodule_from_conf
from gan_lab.data import InMemoryImageDataModule
from gan_lab.errors import UserError
from gan_lab.metrics.extractors.domain import (
    classifier_path,
    ensure_classifier,
    evaluators_dir,
    read_classifier_file,
)


def with_classifier() -> list[str]:
    """The datasets whose datamodule has domain classifier settings."""
    names, todo = set(), [InMemoryImageDataModule]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.domain_classifier is not None:
            names.add(cls.name)
    return sorted(names)


def train(overrides: list[str], force: bool) -> dict:
    data = [o.split("=", 1)[1] for o in overrides if o.startswith("data=")]
    if len(data) != 1:
        raise UserError("say which dataset: python -m gan_lab.evaluators train data=mnist")
    rest = [o for o in overrides if not o.startswith("data=")]
    datamodule = datamodule_from_conf(data[0], rest)
    if datamodule.domain_classifier is None:
        raise UserError(f"no domain classifier for {data[0]!r}; choose one of {with_classifier()}")
    path = classifier_path(datamodule.name, datamodule.image_size, datamodule.channels)
    if force:
        path.unlink(missing_ok=True)
    _, record = ensure_classifier(datamodule)
    return {**record, "path": str(path)}


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m gan_lab.evaluators")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train (or reuse) a dataset's domain classifier")
    p_train.add_argument("overrides", nargs="+", help="data=<dataset> [data.key=value ...]")
    p_train.add_argument("--force", action="store_true", help="train again even if cached")
    sub.add_parser("list", help="list the cached classifiers and their accuracies")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "train":
        record = run_user_errors_as_one_line(lambda: train(args.overrides, args.force))
        print(json.dumps(record, indent=1))
        return
    records = []
    for path in sorted(evaluators_dir().glob("*.pt")):
        # The record inside the weights file is the truth; the JSON beside it is only a copy.
        try:
            records.append({"path": str(path), **read_classifier_file(path)[1]})
        except UserError as err:
            records.append({"path": str(path), "error": str(err)})
    print(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()

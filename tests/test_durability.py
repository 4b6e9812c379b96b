"""Run artifacts are written atomically and durably (gan_lab.io.atomic_write), by rank 0."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from gan_lab.config import CONF_DIR
from gan_lab.gan.loggers import RANK_ENV_KEYS, RUN_ID_FILE, run_id
from gan_lab.io import atomic_write, file_sha256

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def leftovers(folder: Path) -> list[str]:
    """Temp files atomic_write would leave behind after a failure."""
    return [p.name for p in folder.rglob("*.tmp")]


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_dir_after(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    calls = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        calls.append((kind, target.read_bytes()))  # what the target holds at that moment
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(target, lambda f: f.write(b"new"))
    assert calls == [("file", b"old"), ("dir", b"new")]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.parametrize("fail_in", ["write", "fsync"])
def test_a_failed_write_leaves_the_previous_file_byte_identical(fail_in, tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_bytes(b'{"previous": true}\n')

    def write(f) -> None:
        f.write(b'{"half": ')
        if fail_in == "write":
            raise OSError("disk full")

    if fail_in == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("EIO")))
    with pytest.raises(OSError):
        atomic_write(target, write)
    assert target.read_bytes() == b'{"previous": true}\n'
    assert leftovers(tmp_path) == []


@pytest.fixture()
def recorded(monkeypatch):
    """Patch ``atomic_write`` in the given modules with a recording wrapper of the real one;
    returns (patch function, list of written paths)."""
    paths: list[Path] = []

    def recording(path, write):
        paths.append(Path(path))
        atomic_write(path, write)

    def patch(*modules) -> list[Path]:
        for module in modules:
            monkeypatch.setattr(module, "atomic_write", recording)
        return paths

    return patch


def test_sample_grid_callback_writes_both_pngs_atomically(recorded, tmp_path):
    from gan_lab.gan.callbacks import sample_grid

    written = recorded(sample_grid)
    callback = sample_grid.SampleGrid(str(tmp_path / "samples"), nrow=2)
    module = SimpleNamespace(
        fixed_noise=torch.zeros(4, 3),
        sampling_generator=lambda z: torch.rand(len(z), 1, 8, 8) * 2 - 1,
        generator_steps=7,
    )
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, loggers=[])
    callback.on_validation_epoch_end(trainer, module)
    step, latest = tmp_path / "samples" / "step_000007.png", tmp_path / "samples" / "latest.png"
    assert written == [step, latest]
    assert step.read_bytes() == latest.read_bytes() and step.read_bytes()[:8] == PNG_MAGIC
    assert leftovers(tmp_path) == []


def test_sample_cli_outputs_are_written_atomically(recorded, tmp_path, monkeypatch):
    from gan_lab.commands import sample

    written = recorded(sample)
    tiny = nn.Sequential(nn.Linear(100, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    monkeypatch.setattr(sample, "load_generator",
                        lambda *a, **k: (tiny, {"model": {"latent_dim": 100}}, {}))  # fmt: skip
    out = tmp_path / "grid.jpg"
    args = ["ckpt_path=x", f"out={out}", "n=4", "device=cpu", "interpolation_rows=2",
            "interpolation_steps=3"]  # fmt: skip
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("sample", overrides=args)
    sample.sample(cfg)
    interp = tmp_path / "grid_interpolation.jpg"
    assert written == [out, interp]
    assert out.read_bytes()[:2] == interp.read_bytes()[:2] == b"\xff\xd8"  # JPEG, by suffix
    assert leftovers(tmp_path) == []


@pytest.fixture()
def no_rank_env(monkeypatch):
    for key in RANK_ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "writes"),
    [({}, True),
     ({"SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, True),
     ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
     ({"SLURM_PROCID": "1", "SLURM_LOCALID": "0"}, False),  # SLURM task 1 on a second node
     ({"SLURM_PROCID": "3"}, False),
     ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # Lightning's launcher on node 1
     ({"LOCAL_RANK": "1"}, False),
     ({"RANK": "2", "LOCAL_RANK": "0"}, False)],
)  # fmt: skip
def test_wandb_run_id_is_written_by_global_rank_zero_only(env, writes, no_rank_env, recorded,
                                                          tmp_path):  # fmt: skip
    from gan_lab.gan import loggers

    written = recorded(loggers)
    for key, value in env.items():
        no_rank_env.setenv(key, value)
    new_id = run_id(tmp_path / "run")
    path = tmp_path / "run" / RUN_ID_FILE
    assert len(new_id) == 8
    assert path.is_file() is writes and written == ([path] if writes else [])
    if writes:
        assert path.read_text() == new_id + "\n"
        assert run_id(tmp_path / "run") == new_id  # read back, not made again


def test_report_files_are_written_atomically(recorded, tmp_path):
    from gan_lab.commands import report
    from gan_lab.gan import report_plots

    written = recorded(report, report_plots)
    for i, (dim, fid) in enumerate([(25, 300.0), (50, 200.0)]):
        run = tmp_path / "sweep" / str(i)
        (run / "samples").mkdir(parents=True)
        (run / "samples" / "latest.png").write_bytes(_png())
        summary = {"status": "completed", "overrides": [f"model.latent_dim={dim}"],
                   "run_dir": str(run), "metrics": {"fid_domain": fid},
                   "metrics_history": [{"step": 10, "fid_domain": fid}]}  # fmt: skip
        (run / "summary.json").write_text(json.dumps(summary))
    result = report.make_report(tmp_path / "sweep", tmp_path / "report")
    files = sorted(Path(f) for f in result["files"])
    assert sorted(written) == files
    assert {f.name for f in files} == {"report.md", "report.csv", "fid_domain_by_setting.png",
                                       "fid_domain_by_step.png", "samples.png"}  # fmt: skip
    assert all(f.read_bytes()[:8] == PNG_MAGIC for f in files if f.suffix == ".png")
    assert (tmp_path / "report" / "report.csv").read_bytes().startswith(b"setting,runs,failed")
    assert leftovers(tmp_path) == []


def _png() -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="png")
    return buffer.getvalue()


def test_fid_cli_out_is_written_atomically(recorded, tmp_path, monkeypatch, capsys):
    from gan_lab.commands import fid

    written = recorded(fid)
    monkeypatch.setattr(fid, "evaluate_sets", lambda *a, **kw: {"fid": 1.5})
    fid.main(["a", "b", "--out", str(tmp_path / "fid.json")])
    assert written == [tmp_path / "fid.json"]
    assert json.loads((tmp_path / "fid.json").read_text()) == {"fid": 1.5}


def test_bench_json_is_written_atomically(recorded, tmp_path, monkeypatch, capsys):
    from gan_lab.commands import bench

    written = recorded(bench)

    def run(cfg, save):  # the bench saves its result so far through ``save`` after every row
        result = {"sections": [], "complete": True}
        save(result)
        return result

    monkeypatch.setattr(bench, "run", run)
    monkeypatch.setattr(bench, "table", lambda result: "")
    bench.main([f"out={tmp_path / 'deep' / 'bench.json'}"])
    assert written == [tmp_path / "deep" / "bench.json"]
    assert json.loads(written[0].read_text()) == {"sections": [], "complete": True}


def test_inception_sidecar_uses_the_shared_atomic_write(recorded, tmp_path, monkeypatch):
    from gan_lab.metrics.extractors import inception_registry as reg

    written = recorded(reg)
    monkeypatch.setattr(reg, "_fetch_registry_model", lambda workdir, timeout: workdir / "m.pt")

    def convert(member: Path, out: Path) -> dict:
        out.write_bytes(b"weights")
        return {"max_abs_feature_diff": 0.0, "seconds": 0.0}

    monkeypatch.setattr(reg, "convert_fid_helper_model", convert)
    weights = reg.build_converted(tmp_path, pip_timeout=1)
    sidecar = reg.sidecar_path(weights.path)
    assert written == [sidecar]
    assert json.loads(sidecar.read_text())["sha256"] == file_sha256(weights.path)
    assert not hasattr(reg, "_atomic_write")  # one implementation: gan_lab.io's

"""gan_lab.bench runs its sections in one process and writes its JSON; speed options train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gan_lab.commands.bench import main
from gan_lab.errors import UserError
from gan_lab.gan.bench import sections
from gan_lab.gan.bench.peer import accelerator_flag
from gan_lab.gan.bench.setup import fresh_setting, training_config
from gan_lab.gan.bench.throughput import matmul_peak
from gan_lab.gan.bench.training import plain_segment

TINY = ["steps=2", "warmup=1", "repeats=1", "~models.dcgan64", "precision_models=[mnist_default]",
        "batch_size=32", "compile=[false]", "data_batches=3", "eval_images=32",
        "eval_model=mnist_default", "eval_extractors=[domain]", "eval_samples=64",
        "largest_batch=always", "largest_batch_max=64",
        "matmul_size=256", "data_datasets=[mnist]", "profile_steps=1",
        "profile=[{model:mnist_default,precision:bf16-mixed,channels_last:false}]"]  # fmt: skip


@pytest.fixture
def mirrored_data(monkeypatch, session_data_dir):
    """gan_lab reads its datasets from the session's data dir, fetched from the local mirror."""
    from conftest import SHARED_DATA

    monkeypatch.setenv("GAN_LAB_DATA_DIR", str(session_data_dir))
    monkeypatch.setenv("GAN_LAB_DATA_MIRRORS", str(SHARED_DATA))


@pytest.mark.slow
def test_bench_writes_table_and_json(tmp_path, capsys, mirrored_data):
    out = tmp_path / "bench.json"
    main([*TINY, "sections=[train,precision,memory,data,eval,flops,profile]", f"out={out}"])
    result = json.loads(out.read_text())
    assert result["machine"]["threads"] == torch.get_num_threads()
    assert result["machine"]["torch"] == torch.__version__
    (train,) = result["train"]
    assert train["lightning_images_per_second"] > 0 and train["plain_images_per_second"] > 0
    assert train["ratio"] == pytest.approx(
        train["lightning_images_per_second"] / train["plain_images_per_second"]
    )
    # 2 precisions x channels_last off/on (x compile off) on CPU.
    assert [(r["precision"], r["channels_last"]) for r in result["precision"]] == [
        ("32-true", False),
        ("32-true", True),
        ("bf16-mixed", False),
        ("bf16-mixed", True),
    ]
    # Peak memory is per configuration: the peak RSS is reset before each (Linux).
    assert all(r["peak_memory_mb"] > 0 for r in result["precision"])
    assert len({r["peak_memory_mb"] for r in [train, *result["precision"]]}) > 1
    assert all(r["startup_seconds"] > 0 for r in result["precision"])
    # Lightning's batch-size finder grew batch 32 to the search limit 64 (CPU RAM is ample).
    (memory,) = result["memory"]
    assert memory["largest_batch"] == 64 and memory["at_search_limit"]
    ev = result["eval"]
    assert ev["domain_images_per_second"] > 0
    # A warm cache loads the real statistics instead of running the classifier over them.
    cold, warm = (
        ev["domain_real_stats_seconds_cold_cache"],
        ev["domain_real_stats_seconds_warm_cache"],
    )
    assert 0 < warm < cold
    assert ev["domain_validation_seconds_warm_cache"] > warm
    (data,) = result["data"]
    assert data["gan_lab_images_per_second"] > 0 and data["torchvision_pil_images_per_second"] > 0
    (flops,) = result["flops"]["models"]
    # The default MNIST DCGAN: tens of MFLOP per training image (fwd + bwd of D and G).
    assert 1e7 < flops["flops_per_image"] < 1e9
    # Achieved = FLOPs per image x gan_lab's images/s, over the peak measured in the same run
    # (no bound on the fraction: a matmul peak taken while other jobs share the cores is low).
    peak = result["flops"]["matmul_peak_fp32"]
    assert flops["achieved_flops"] == pytest.approx(
        flops["flops_per_image"] * train["lightning_images_per_second"]
    )
    assert flops["fraction_of_fp32_peak"] == pytest.approx(flops["achieved_flops"] / peak)
    (prof,) = result["profile"]
    assert prof["precision"] == "bf16-mixed" and 0 < len(prof["top_ops"]) <= 12
    assert sum(op["share"] for op in prof["top_ops"]) <= 1 + 1e-6
    assert any("conv" in op["op"] for op in prof["top_ops"])  # the networks' own work shows
    assert json.loads(Path(prof["trace"]).read_text())["traceEvents"]
    printed = capsys.readouterr().out
    assert "| mnist_default | 32-true |" in printed and f"written: {out}" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["largest_batch=sometimes"], "largest_batch=sometimes: choose cuda, always or never"),
        (["eval_model=dcgan128"], "eval_model: dcgan128 is not one of the models"),
    ],
)
def test_bad_bench_option_is_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_skipped_largest_batch_search_is_reported(tmp_path, capsys):
    main(["sections=[memory]", "largest_batch=never", f"out={tmp_path / 'b.json'}"])
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["memory"] == {
        "skipped": "no largest-batch search on cpu with largest_batch=never"
    }
    assert "largest batch: no largest-batch search on cpu" in capsys.readouterr().out


def test_bad_bench_section_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sections=[train,warp]"])
    assert exit_info.value.code == 2
    assert "unknown bench sections ['warp']" in capsys.readouterr().err


def test_matmul_peak_is_a_rate():
    assert matmul_peak(128, torch.float32, torch.device("cpu"), 2, min_seconds=0.1) > 1e6


def test_bench_knn_section_times_the_four_metrics(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["sections=[knn]", "knn_sizes=[60,90]", "knn_dim=8", "knn_memory_mb=0.01",
          f"out={out}"])  # fmt: skip
    rows = json.loads(out.read_text())["knn"]
    assert [r["samples"] for r in rows] == [60, 90]
    for r in rows:
        assert r["seconds"] > 0 and r["peak_above_inputs_mb"] >= 0
        assert 0 <= r["precision"] <= 1 and 0 <= r["coverage"] <= 1
    assert "precision/recall/density/coverage 90 x 90 (8-d, float64" in capsys.readouterr().out


# A stand-in with the interface of pytorch/examples' dcgan/main.py (its arguments, FakeData,
# one "[epoch/niter][i/len] Loss_D: ..." line per iteration): the bench's real peer is the
# user's copy of that script, which is not shipped; this checks the harness around it.
PEER_STANDIN = """
import argparse, os, time
import torch, torchvision.datasets as dset, torchvision.transforms as transforms
p = argparse.ArgumentParser()
for flag in ("--dataset", "--outf"):
    p.add_argument(flag)
for flag in ("--niter", "--batchSize", "--imageSize", "--workers", "--manualSeed"):
    p.add_argument(flag, type=int)
p.add_argument("--accel", action="store_true")
opt = p.parse_args()
assert opt.dataset == "fake" and not opt.accel
os.makedirs(opt.outf, exist_ok=True)
data = dset.FakeData(size=int(os.environ["STANDIN_SIZE"]),
                     image_size=(3, opt.imageSize, opt.imageSize), transform=transforms.ToTensor())
loader = torch.utils.data.DataLoader(data, batch_size=opt.batchSize, num_workers=opt.workers)
for epoch in range(opt.niter):
    for i, (x, _) in enumerate(loader):
        time.sleep(0.2)
        print("[%d/%d][%d/%d] Loss_D: 1.0 Loss_G: 1.0" % (epoch, opt.niter, i, len(loader)))
"""


@pytest.mark.slow
def test_bench_peer_section_runs_both_as_whole_processes(tmp_path, capsys, monkeypatch,
                                                          mirrored_data):  # fmt: skip
    monkeypatch.setenv("STANDIN_SIZE", "40")
    script = tmp_path / "main.py"
    script.write_text(PEER_STANDIN)
    out = tmp_path / "bench.json"
    main(["sections=[peer]", f"peer_script={script}", "peer_epochs=[1,3]",
          "peer_images_per_epoch=40", "peer_batch_size=16", "peer_image_size=32",
          "peer_workers=0",
          "peer_gan_lab=['data=cifar10','model=dcgan32','metrics=none','logger=none']",
          f"out={out}"])  # fmt: skip
    peer = json.loads(out.read_text())["peer"]
    # 40 images in 3 batches per epoch (16, 16, 8): 2 epochs more in the long run.
    assert peer["images_differential"] == {"peer": 80, "gan_lab": 96}
    (short, long), (g_short, g_long) = peer["seconds"]["peer"], peer["seconds"]["gan_lab"]
    assert long - short > 6 * 0.2 / 2  # the six more 0.2 s iterations, start-up noise aside
    assert peer["peer_images_per_second"] == pytest.approx(80 / (long - short))
    assert peer["gan_lab_images_per_second"] == pytest.approx(96 / (g_long - g_short))
    assert peer["ratio"] == pytest.approx(
        peer["gan_lab_images_per_second"] / peer["peer_images_per_second"]
    )
    assert "peer (cpu, batch 16, 32 px, 80 images long minus short)" in capsys.readouterr().out


def test_bench_peer_section_without_a_script_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sections=[peer]"])
    assert exit_info.value.code == 2
    assert "peer_script=<path to pytorch/examples dcgan/main.py>" in capsys.readouterr().err


def test_bench_peer_with_a_different_epoch_size_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STANDIN_SIZE", "40")
    script = tmp_path / "main.py"
    script.write_text(PEER_STANDIN)
    with pytest.raises(SystemExit) as exit_info:
        main(["sections=[peer]", f"peer_script={script}", "peer_epochs=[1,2]",
              "peer_images_per_epoch=1000", "peer_batch_size=16", "peer_image_size=8",
              "peer_workers=0", f"out={tmp_path / 'b.json'}"])  # fmt: skip
    assert exit_info.value.code == 2
    assert "the peer ran 3 iterations in 1 epochs, not 63" in capsys.readouterr().err


OLD_PEER_ARGS = """
import argparse
parser = argparse.ArgumentParser()
parser.add_argument('--cuda', action='store_true', default=False, help='enables cuda')
"""


def test_peer_accelerator_flag_follows_the_script(tmp_path):
    """Today's main.py trains on the GPU with --accel, older copies with --cuda."""
    new, old, other = tmp_path / "new.py", tmp_path / "old.py", tmp_path / "other.py"
    new.write_text(PEER_STANDIN)
    old.write_text(OLD_PEER_ARGS)
    other.write_text(OLD_PEER_ARGS.replace("--cuda", "--gpu"))
    assert accelerator_flag(new) == "--accel"
    assert accelerator_flag(old) == "--cuda"
    with pytest.raises(UserError, match="has neither --accel nor --cuda"):
        accelerator_flag(other)


def _compile_fails(monkeypatch, failure: BaseException) -> None:
    """compare_training, except that settings with compile on raise ``failure``."""
    real = sections.compare_training

    def compare(name, cfg, bench, device):
        if cfg.module.compile:
            raise failure
        return real(name, cfg, bench, device)

    monkeypatch.setattr(sections, "compare_training", compare)


GRID = [*TINY, "sections=[precision]", "precisions=[32-true]", "channels_last=[false]"]


@pytest.mark.slow
def test_a_failing_setting_is_a_row_and_the_others_still_run(
    tmp_path, capsys, monkeypatch, mirrored_data
):
    _compile_fails(monkeypatch, RuntimeError("CUDA graphs: boom\nmore lines"))
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as exit_info:
        main([*GRID, "compile=[false,reduce-overhead,true]", f"out={out}"])
    assert exit_info.value.code == 1
    result = json.loads(out.read_text())
    assert result["complete"] is True
    first, second, third = result["precision"]
    assert first["compile"] is False and first["lightning_images_per_second"] > 0
    assert second == {
        "name": "mnist_default",
        "precision": "32-true",
        "channels_last": False,
        "compile": "reduce-overhead",
        "error": "RuntimeError: CUDA graphs: boom",
    }
    assert third["compile"] is True and third["error"] == second["error"]
    captured = capsys.readouterr()
    assert "| reduce-overhead | failed: RuntimeError: CUDA graphs: boom |" in captured.out
    assert "error: 2 bench settings failed (mnist_default 32-true compile=reduce-overhead, " \
           "mnist_default 32-true compile=True)" in captured.err  # fmt: skip


@pytest.mark.slow
def test_a_bench_cut_short_keeps_the_rows_it_measured(tmp_path, monkeypatch, mirrored_data):
    _compile_fails(monkeypatch, KeyboardInterrupt())  # as a time limit's signal would
    out = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        main([*GRID, "compile=[false,true]", f"out={out}"])
    result = json.loads(out.read_text())
    assert result["complete"] is False
    (row,) = result["precision"]
    assert row["compile"] is False and row["lightning_images_per_second"] > 0


@pytest.mark.parametrize("reuse", [True, False])
def test_plain_loop_makes_the_generator_forwards_gan_module_makes(reuse, mirrored_data):
    """The bench's plain loop is the like-for-like baseline: with reuse_fakes, one G forward
    per step serves both updates, as in GANModule; without, the D and G steps make their own."""
    cfg = training_config(["data=mnist", "model=dcgan", f"module.reuse_fakes={reuse}"], 16)
    datamodule, module = fresh_setting(cfg)
    calls = []
    module.generator.register_forward_hook(lambda *args: calls.append(1))
    plain_segment(module, datamodule, cfg, steps=3, warmup=0, device=torch.device("cpu"))
    assert len(calls) == (3 if reuse else 6)

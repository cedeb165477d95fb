"""bench.bench, bench.ab, bench.bound, run as modules: small real runs and the figures they derive."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_writes_consistent_figures_for_every_contender(tmp_path):
    output, markdown = tmp_path / "bench.json", tmp_path / "bench.md"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.bench", "--hidden_sizes", "16", "--epochs", "2",
         "--repeats", "1", "--load", "--output", str(output), "--markdown", str(markdown)],
        capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert completed.returncode == 0, completed.stderr
    data = json.loads(output.read_text())
    assert data["gemm_gflops"]["roofline"] == max(data["gemm_gflops"]["numpy"], data["gemm_gflops"]["scipy"])
    assert all(b["architecture"] and b["num_threads"] >= 1 for b in data["machine"]["blas"])
    (row,) = data["summary"]
    names = {r["net"] for r in data["runs"]}
    assert names == {"my_net", "keras_net[tensorflow]", "keras_net[jax]", "keras_net[torch]", "pytorch_eager"}
    mine = next(r for r in data["runs"] if r["net"] == "my_net")
    fastest = min((r for r in data["runs"] if r["net"].startswith("keras_net")), key=lambda r: r["train_time_s"])
    assert row["fastest_keras"] == fastest["net"] and row["keras_net_s"] == fastest["train_time_s"]
    assert row["ratio"] == pytest.approx(fastest["train_time_s"] / mine["train_time_s"])
    useful_gflop = 4 * (784 * 16 + 16 * 10) * 60_000 * 2 / 1e9  # two epochs at hidden 16
    assert row["my_net_gflops"] == pytest.approx(useful_gflop / mine["train_time_s"])
    assert row["roofline_share"] == pytest.approx(row["my_net_gflops"] / data["gemm_gflops"]["roofline"])
    assert all(r["test_accuracy"] > 0.85 for r in data["runs"])  # every contender really trained
    (load,) = data["under_load"]
    assert load["default"] > 0 and load["one_thread"] > 0 and len(data["targets"]) == 3
    (products,) = data["products"]
    assert products["hidden_size"] == 16 and products["share_of_plain"] == pytest.approx(
        products["plain_s"] / products["my_net_s"])
    roofline = data["gemm_gflops"]["roofline"]
    assert products["my_net_roofline_share"] == pytest.approx(products["my_net_gflops"] / roofline)
    assert data["cpu_kind"].endswith(data["machine"]["blas"][-1]["architecture"])
    assert any(line.startswith("hidden 16: my_net's products at") for line in data["targets"])
    assert row["first_layer_share"] == 1.0  # hidden 16 for 2 epochs: renumbering pixels would not pay
    threads = [r["net_info"]["blas_thread_steps"] for r in data["runs"] if r.get("under_load") == "one_thread"]
    assert threads == [{"1": 938}]  # 469 steps an epoch, all with one thread (JSON keys are strings)
    text = markdown.read_text()
    assert "python -m bench.bench --hidden_sizes 16" in text and "| 16 " in text and "Under one busy core" in text
    assert "my_net / plain GEMM rate" in text and data["cpu_kind"] in text


def run_ab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.ab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_ab_times_both_versions_from_the_same_start():
    completed = run_ab("--against", "HEAD", "--hidden_sizes", "8", "--epochs", "2")
    assert completed.returncode == 0, completed.stderr
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in completed.stdout.splitlines()[2:]]
    assert [row[:2] for row in rows] == [["8", "HEAD"], ["8", "checkout"]]
    assert all(float(row[2]) > 0 for row in rows)
    unchanged = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "*.py"], cwd=ROOT).returncode == 0
    if unchanged:  # the same code from the same weights on the same batches: the very same weights
        assert float(rows[1][7]) == 0.0


def test_ab_refuses_an_unknown_revision_in_one_line():
    completed = run_ab("--against", "no-such-revision", "--epochs", "2")
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1].startswith("Error: --against no-such-revision:")
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_bound_times_the_parts_of_a_step_inside_a_fit(tmp_path):
    output, markdown = tmp_path / "bound.json", tmp_path / "bound.md"
    command = [sys.executable, "-m", "bench.bound", "--hidden_sizes", "8,64", "--epochs", "2", "--output", str(output),
               "--markdown", str(markdown)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    data = json.loads(output.read_text())
    assert [row["hidden"] for row in data["rows"]] == [8, 64]
    steps = 2 * 469
    for row in data["rows"]:
        parts = [row[f"{part}_us"] for part in ("products", "gathering", "small_products", "softmax", "output_delta")]
        assert all(part > 0 for part in parts) and row["rest_us"] > 0
        assert sum(parts) + row["rest_us"] == pytest.approx(row["fit_s"] / steps * 1e6)  # the parts add up
        assert 0 < row["floor_s"] < row["fit_s"] and 0 < row["steady_epoch_s"] < row["fit_s"]
        assert row["renumbering_s"] == 0  # 2 epochs: renumbering would not pay, the dense loop gathers
        replayed = row["replayed"]
        assert replayed["share_of_plain"] == pytest.approx(replayed["plain_s"] / replayed["my_net_s"])
        assert row["products_roofline_share"] == pytest.approx(row["products_gflops"] / data["gemm_gflops"]["roofline"])
    assert completed.stdout.startswith(data["cpu_kind"])
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    assert markdown.read_text().count(f"## {data['cpu_kind']}") == 2  # a section per run, appended


def test_products_replays_an_epoch_against_the_plain_gemm(tmp_path):
    output, markdown = tmp_path / "products.json", tmp_path / "products.md"
    completed = subprocess.run([sys.executable, "-m", "bench.products", "--hidden_sizes", "8,32", "--rounds", "1",
                                "--output", str(output), "--markdown", str(markdown)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    data = json.loads(output.read_text())
    assert [row["hidden_size"] for row in data["rows"]] == [8, 32]
    for row in data["rows"]:
        assert row["share_of_plain"] == pytest.approx(row["plain_s"] / row["my_net_s"])
        assert row["my_net_gflops"] / row["plain_gflops"] == pytest.approx(row["share_of_plain"])
        assert row["plain_roofline_share"] == pytest.approx(row["plain_gflops"] / data["gemm_gflops"]["roofline"])
    text = markdown.read_text()
    assert text.startswith(f"## {data['cpu_kind']}\n") and "python -m bench.products --hidden_sizes 8,32" in text


def test_epoch_shapes_are_the_batches_a_fit_multiplies():
    from bench.products import epoch_shapes
    from mnist_compare.data import idx
    from mnist_compare.nets.pixels import RenumberedPixels

    X = idx.load_data()[0][:5000]
    shapes = epoch_shapes(X, batch_size=128, seed=3)
    assert [n for n, _ in shapes] == [128] * 39 + [8]  # the last partial batch included
    order, renumbered = np.random.default_rng(3).permutation(len(X)), RenumberedPixels(X)
    assert [k for _, k in shapes] == [renumbered.prefix_length(order[start:start + 128])
                                      for start in range(0, len(X), 128)]
    assert 400 < np.mean([k for _, k in shapes]) < 784  # MNIST's batches need most pixels, never all

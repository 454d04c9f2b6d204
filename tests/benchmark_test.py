"""launch/benchmark.py at tiny sizes: every figure is printed and is a positive number.

The three runs start together as subprocesses (the script owns absl flags and
JAX's compile caches), so the test costs about one run's compile time.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from pdns_jax import graph as graph_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ("--synthetic_users=200", "--synthetic_items=300", "--synthetic_interactions=3000")
RUNS = {
    "smoke": ("--config=configs/synthetic.py:smoke", "--epochs=1", "--eval_repeats=1",
              "--warmup=0"),
    # MF trains here to keep compiles short; the smoke run covers LightGCN.
    "tiny_replicas": ("--config=configs/synthetic.py:smoke", "--config.model=mf", *TINY,
                      "--epochs=1", "--eval_repeats=1", "--warmup=0", "--replicas=2",
                      "--propagation_compare", "--propagation_repeats=1"),
    "graph_only": ("--config=configs/synthetic.py:smoke", *TINY, "--graph_only"),
}
TIMED = ("compile_seconds", "train_epoch_seconds", "eval_seconds", "eval_test_seconds",
         "steps_per_second", "peak_memory_bytes")
SHAPES = ("users", "items", "train", "embed_dim", "layers", "pool_size", "batch_size",
          "replicas")


@pytest.fixture(scope="module")
def outputs():
  """{run name: {line name: value}} of the three runs, started in parallel."""
  procs = {name: subprocess.Popen(
      [sys.executable, "launch/benchmark.py", *args], cwd=ROOT, env=dict(os.environ),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for name, args in RUNS.items()}
  out = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, f"{name} failed:\n{stderr[-3000:]}"
    out[name] = dict(re.findall(r"^(\w+): (.*)$", stdout, re.M))
  return out


def _positive(lines, name):
  assert name in lines, f"no line {name!r} in {sorted(lines)}"
  value = float(lines[name])
  assert value > 0, f"{name}: {value}"
  return value


def _shapes(lines):
  shapes = dict(pair.split("=") for pair in lines["shapes"].split())
  assert set(shapes) == set(SHAPES)
  return {k: int(v) for k, v in shapes.items()}


@pytest.mark.parametrize("run", ["smoke", "tiny_replicas"])
def test_training_runs_print_every_figure(outputs, run):
  lines = outputs[run]
  assert lines["backend"] == "cpu" or lines["backend"]
  assert lines["devices"] and lines["peak_memory_source"]
  for name in TIMED:
    _positive(lines, name)
  assert all(v > 0 for v in _shapes(lines).values())


def test_random_graph_has_the_requested_size(outputs):
  shapes = _shapes(outputs["tiny_replicas"])
  assert (shapes["users"], shapes["items"], shapes["train"]) == (200, 300, 3000)
  assert shapes["replicas"] == 2


def test_replicas_are_compared_with_sequential_runs(outputs):
  lines = outputs["tiny_replicas"]
  assert int(lines["replicas"]) == 2
  vmapped = _positive(lines, "vmapped_epoch_seconds")
  sequential = _positive(lines, "sequential_epoch_seconds")
  assert sequential == pytest.approx(2 * _positive(lines, "single_epoch_seconds"), rel=1e-4)
  assert _positive(lines, "replica_speedup") == pytest.approx(sequential / vmapped, rel=1e-3)


def test_every_propagation_is_timed(outputs):
  for method in graph_lib.PROPAGATIONS:
    _positive(outputs["tiny_replicas"], f"propagation_{method}_seconds")


def test_graph_only_builds_the_graph_and_skips_training(outputs):
  lines = outputs["graph_only"]
  assert int(lines["graph_edges"]) == 2 * 3000
  _positive(lines, "graph_build_seconds")
  _positive(lines, "graph_peak_rss_bytes")
  _positive(lines, "peak_memory_bytes")
  assert "train_epoch_seconds" not in lines and "compile_seconds" not in lines

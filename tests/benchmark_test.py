"""launch/benchmark.py: the random graph, the graph-only mode and one tiny run.

The data and graph code runs in-process (cheap); one tiny MF run with two
replicas and the propagation comparison, and one bad flag, run as scripts
side by side (the script owns absl flags), so the file costs about one
small compile.
"""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from configs import synthetic
from launch import benchmark
from launch import scaling
from pdns_jax import data as data_lib
from pdns_jax import graph as graph_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
USERS, ITEMS, TRAIN = 200, 300, 3000
TINY = (f"--synthetic_users={USERS}", f"--synthetic_items={ITEMS}",
        f"--synthetic_interactions={TRAIN}")
TIMED = ("compile_seconds", "train_epoch_seconds", "eval_compile_seconds", "eval_seconds",
         "eval_test_seconds", "steps_per_second", "single_epoch_seconds",
         "vmapped_epoch_seconds", "sequential_epoch_seconds", "replica_speedup",
         "peak_memory_bytes")


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
  """(stdout lines {name: value} of the tiny run, (returncode, stderr) of a bad flag,
  (stdout, output folder) of a tiny --scaling run)."""
  base = [sys.executable, "launch/benchmark.py", "--config=configs/synthetic.py:smoke"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = tmp_path_factory.mktemp("scaling")
  tiny, bad, scaling, table = [subprocess.Popen(
      argv, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE) for argv in (
          base + ["--config.model=mf", *TINY, "--epochs=1", "--eval_repeats=1", "--warmup=0",
                  "--replicas=2", "--propagation_compare", "--propagation_repeats=1"],
          base + ["--epochs=-1"],
          base + ["--scaling", "--scaling_sizes=20000,40000", "--scaling_models=mf",
                  "--scaling_steps=1", "--scaling_eval_users=16", "--devices=1,8",
                  f"--scaling_out={out}"],
          base + ["--config.model=mf", *TINY, "--samplers=dns,rns", "--epochs=1",
                  "--warmup=0"])]
  stdout, stderr = tiny.communicate(timeout=300)
  assert tiny.returncode == 0, stderr[-3000:]
  _, bad_stderr = bad.communicate(timeout=300)
  scaling_stdout, scaling_stderr = scaling.communicate(timeout=300)
  assert scaling.returncode == 0, scaling_stderr[-3000:]
  table_stdout, table_stderr = table.communicate(timeout=300)
  assert table.returncode == 0, table_stderr[-3000:]
  return (dict(re.findall(r"^(\w+): (.*)$", stdout, re.M)), (bad.returncode, bad_stderr),
          (scaling_stdout, out), table_stdout)


def test_sampler_table_times_each_sampler_against_dns(scripts):
  stdout = scripts[3]
  rows = {line.split()[0]: line.split() for line in stdout.splitlines()
          if line.split() and line.split()[0] in ("dns", "rns")}
  assert set(rows) == {"dns", "rns"}
  assert rows["dns"][2] == "1.00"  # the ratio column is relative to DNS
  assert float(rows["rns"][1]) > 0 and float(rows["rns"][5]) > 0
  assert float(rows["rns"][4]) == 0.0  # RNS carries no state


def test_random_split_has_the_requested_size_and_no_repeated_pair():
  split = benchmark.random_split(USERS, ITEMS, TRAIN, seed=3)
  assert (split.num_users, split.num_items, len(split.train)) == (USERS, ITEMS, TRAIN)
  assert len(split.valid) == len(split.test) == round(TRAIN / 0.8 * 0.1)
  pairs = np.concatenate([split.train, split.valid, split.test])
  keys = pairs[:, 0].astype(np.int64) * ITEMS + pairs[:, 1]
  assert len(np.unique(keys)) == len(keys)  # parts are disjoint, pairs unique
  assert pairs.min() >= 0 and pairs[:, 0].max() < USERS and pairs[:, 1].max() < ITEMS
  # Items are long-tailed: the most popular tenth holds far more than a tenth.
  counts = np.sort(np.bincount(split.train[:, 1], minlength=ITEMS))[::-1]
  assert counts[:ITEMS // 10].sum() > 0.3 * TRAIN
  np.testing.assert_array_equal(benchmark.random_split(USERS, ITEMS, TRAIN, seed=3).train,
                                split.train)
  with pytest.raises(data_lib.DataError, match="--synthetic_users"):
    benchmark.random_split(10, 10, 100, seed=0)  # more than 40% of the pairs


def test_benchmark_split_takes_its_sizes_as_arguments():
  config = synthetic.get_config("smoke")
  assert benchmark.benchmark_split(config, USERS, ITEMS, TRAIN).name == (
      f"random_{USERS}x{ITEMS}x{TRAIN}")
  own = benchmark.benchmark_split(config)  # no sizes: the config's own data
  assert (own.num_users, own.num_items) == (config.synthetic.num_users,
                                            config.synthetic.num_items)


def test_graph_only_counts_the_edges_it_built(capsys):
  split = benchmark.random_split(USERS, ITEMS, TRAIN, seed=0)
  benchmark.graph_only(synthetic.get_config("smoke"), split)
  lines = dict(re.findall(r"^(\w+): (.*)$", capsys.readouterr().out, re.M))
  assert int(lines["graph_edges"]) == 2 * TRAIN  # user->item and item->user
  assert float(lines["graph_build_seconds"]) > 0
  assert "train_epoch_seconds" not in lines
  graph = benchmark.training_graph(split)
  assert graph["indptr"].shape == (USERS + ITEMS + 1,)


def test_tiny_run_reports_its_shapes_and_every_figure(scripts):
  lines = scripts[0]
  shapes = dict(pair.split("=") for pair in lines["shapes"].split())
  assert {k: int(v) for k, v in shapes.items()} == dict(
      users=USERS, items=ITEMS, train=TRAIN, embed_dim=8, layers=3, pool_size=16,
      batch_size=256, replicas=2)
  assert lines["backend"] == "cpu" and lines["data"].startswith(f"random_{USERS}x")
  assert int(lines["replicas"]) == 2
  for name in TIMED:
    assert float(lines[name]) > 0, name
  for method in graph_lib.PROPAGATIONS:
    if method == "auto":  # an alias of one of the others, not timed twice
      assert "propagation_auto_seconds" not in lines
    else:
      assert float(lines[f"propagation_{method}_seconds"]) > 0, method
  # Evaluation scores every user with a valid or test pair (data_seed 0).
  split = benchmark.random_split(USERS, ITEMS, TRAIN, seed=0)
  assert int(lines["eval_users"]) == (len(np.unique(split.valid[:, 0])) +
                                      len(np.unique(split.test[:, 0])))


def test_bad_flag_is_one_line_and_exit_status_2(scripts):
  returncode, stderr = scripts[1]
  assert returncode == 2 and stderr.startswith("error: ") and "--epochs" in stderr, stderr
  assert stderr.count("\n") == 1


def test_scaling_prints_a_row_per_size_and_the_fitted_exponent(scripts):
  stdout, out = scripts[2]
  rows = re.findall(r"^\| ([\d,]+) \| mf \| (\d+) \| ([\d,]+) \|", stdout, re.M)
  assert rows == [("20,000", "1", "400"), ("20,000", "8", "400"),
                  ("40,000", "1", "800"), ("40,000", "8", "800")]
  lines = dict(re.findall(r"^(\w+): (.*)$", stdout, re.M))
  for curve in ("mf", "mf_x8"):  # one fitted curve per device count
    assert np.isfinite(float(lines[f"scaling_exponent_{curve}_epoch"]))
    assert np.isfinite(float(lines[f"scaling_exponent_{curve}_eval"]))
  assert (out / "scaling.png").stat().st_size > 0
  text = (out / "scaling.md").read_text()
  assert "--scaling_sizes=20000,40000" in text and "| 40,000 | mf | 8 |" in text


def test_scaling_config_and_exponent_fit():
  config = scaling.scaling_config(synthetic.get_config(), 4_000_000, "lightgcn")
  assert (config.synthetic.kind, config.split, config.model) == ("zipf", "paper", "lightgcn")
  assert config.synthetic.num_users == config.synthetic.num_items == 80_000
  assert (config.embed_dim, config.batch_size, config.pool_size) == (64, 2048, 32)
  sizes = np.array([1e6, 4e6, 16e6])
  assert abs(scaling.fitted_exponent(sizes, 3 * sizes ** 1.1) - 1.1) < 1e-9

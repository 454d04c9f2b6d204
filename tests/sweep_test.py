"""launch/sweep.py and pdns_jax/experiments/{sweep,runner}.py: a tiny sweep end to end.

Planning and tables are tested without training in experiments_grid_test.py
and experiments_tables_test.py.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import synthetic
from pdns_jax import config as config_lib
from pdns_jax.config import ConfigError
from pdns_jax.experiments import sweep
from pdns_jax.experiments import tables

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE = "configs/synthetic.py:smoke"
GRID = "beta=0.1,0.3"


def _smoke(**overrides):
  return config_lib.with_overrides(synthetic.get_config("smoke"),
                                   [("tensorboard", False), *overrides.items()])


def _sweep(out, grid=GRID, seeds=2, **kwargs):
  overrides = kwargs.pop("overrides", {})
  return sweep.run_sweep(_smoke(**overrides), grid, seeds=seeds, out=out, **kwargs)


def _scripts(*argvs):
  """Runs launch scripts side by side: [(returncode, stdout, stderr)] in order."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  procs = [subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for argv in argvs]
  results = []
  for proc in procs:
    stdout, stderr = proc.communicate(timeout=180)
    results.append((proc.returncode, stdout, stderr))
  return results


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
  out = tmp_path_factory.mktemp("sweep")
  return out, _sweep(out)


def test_sweep_writes_rows_and_aggregate(finished_sweep):
  out, rows = finished_sweep
  [run_dir] = (out / "runs").iterdir()
  assert run_dir.name == "beta=0.1+0.3,seeds=0-1"  # one vmapped run
  assert [(r["beta"], r["seed"]) for r in rows] == [(0.1, 0), (0.1, 1), (0.3, 0), (0.3, 1)]
  assert tables.read_csv(out / "runs.csv") == [
      {k: (float(v) if not isinstance(v, str) else v) for k, v in r.items()} for r in rows]
  summary = json.loads((run_dir / "summary.json").read_text())
  for row, replica in zip(rows, summary["replicas"]):
    assert (row["beta"], row["seed"]) == (replica["hparams"]["beta"],
                                          replica["hparams"]["seed"])
    assert row["test/recall@50"] == replica["test/recall@50"]
    assert 0 < row["valid/recall@50"] <= 1 and row["best_epoch"] >= 1
  text = (out / "aggregate.md").read_text()
  assert text.count("(best)") == 1 and "beta=0.3" in text


def test_sweep_reuses_finished_runs(finished_sweep):
  out, rows = finished_sweep
  summary = next((out / "runs").iterdir()) / "summary.json"
  before = summary.stat().st_mtime_ns
  assert _sweep(out) == rows
  assert summary.stat().st_mtime_ns == before


def test_sweep_resumes_a_run_whose_summary_is_cut_short(finished_sweep, capsys):
  # A truncated summary means an unfinished run: it resumes from its last
  # checkpoint (here the final epoch, so nothing trains again) and writes the
  # same summary.
  out, rows = finished_sweep
  run_dir = next((out / "runs").iterdir())
  metrics = (run_dir / "metrics.jsonl").read_text()
  summary = run_dir / "summary.json"
  summary.write_text(summary.read_text()[:40])
  again = _sweep(out)
  assert "incomplete or unreadable" in capsys.readouterr().out
  assert [r["test/recall@50"] for r in again] == [r["test/recall@50"] for r in rows]
  assert json.loads(summary.read_text())["replicas"][0]["best_epoch"] == rows[0]["best_epoch"]
  assert (run_dir / "metrics.jsonl").read_text() == metrics


def test_sweep_refuses_a_folder_of_another_config(finished_sweep):
  out, _ = finished_sweep
  with pytest.raises(ConfigError, match="another config"):
    _sweep(out, overrides={"num_epochs": 5})


def test_sweep_checks_every_value_before_training(tmp_path):
  # pool_size=4 would train, then pool_size=0 would fail: nothing may train.
  with pytest.raises(ConfigError, match=r"config.pool_size: .*>= 1.*pool_size=0"):
    _sweep(tmp_path, grid="pool_size=4,0", seeds=1)
  assert not (tmp_path / "runs").exists()
  (tmp_path / "file").write_text("")
  with pytest.raises(ConfigError, match="--out: .* is a file"):
    _sweep(tmp_path / "file")


def test_vmapped_replica_matches_a_sequential_run(finished_sweep, tmp_path):
  _, rows = finished_sweep
  [alone] = _sweep(tmp_path, grid="beta=0.3", seeds=1, vmap="no", overrides={"seed": 1})
  [twin] = [r for r in rows if (r["beta"], r["seed"]) == (0.3, 1)]
  assert alone["best_epoch"] == twin["best_epoch"]
  for key in ("valid/recall@50", "test/recall@50", "test/ndcg@50"):
    assert alone[key] == pytest.approx(twin[key], abs=1e-4), key


def test_command_line(finished_sweep, tmp_path):
  out, _ = finished_sweep
  base = ["launch/sweep.py", f"--config={SMOKE}"]
  reuse, no_value, bad_value = _scripts(
      base + [f"--grid={GRID}", "--seeds=2", f"--out={out}", "--config.tensorboard=false"],
      base + ["--config.beta", f"--out={tmp_path}"],
      base + ["--grid=eval_every=1,0", f"--out={tmp_path}"])
  assert reuse[0] == 0, reuse[2]
  assert reuse[1].count("finished before") == 1 and "wrote" in reuse[1]
  for (code, _, stderr), text in [(no_value, "--config.beta"),
                                  (bad_value, "config.eval_every: must be >= 1")]:
    assert code == 2 and text in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
  assert not (tmp_path / "runs").exists()

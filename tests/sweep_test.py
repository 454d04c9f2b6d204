"""launch/sweep.py and pdns_jax/experiments.py: grids, runs, resuming, aggregation."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from launch import sweep
from pdns_jax import experiments
from pdns_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE = "configs/synthetic.py:smoke"
NO_TENSORBOARD = [("tensorboard", "false")]


def _smoke_config(**overrides):
  return experiments.with_overrides(experiments.load_config(SMOKE),
                                    list(overrides.items()))


# ----------------------------------------------------------------------------
# Grids, overrides and plans (no training).


def test_parse_grid():
  assert experiments.parse_grid("beta=0.05,0.1, 0.2; pool_size=16,32") == [
      ("beta", ["0.05", "0.1", "0.2"]), ("pool_size", ["16", "32"])]
  assert experiments.parse_grid("") == []


@pytest.mark.parametrize("text,message", [
    ("beta", "not 'field=v1,v2"), ("beta=", "not 'field=v1,v2"),
    ("seed=0,1", "--seeds"), ("beta=0.1;beta=0.2", "twice"),
    ("num_replicas=2", "set by the sweep")])
def test_parse_grid_rejects(text, message):
  with pytest.raises(experiments.GridError, match=message):
    experiments.parse_grid(text)


def test_overrides_are_typed_and_checked():
  config = _smoke_config()
  axes = experiments.typed_axes(config, [
      ("pool_size", ["8"]), ("beta", ["0.5"]), ("progress", ["true"]),
      ("synthetic.num_users", ["30"]), ("sampler", ["dns"]), ("topk", ["10,20"])])
  assert axes == [("pool_size", [8]), ("beta", [0.5]), ("progress", [True]),
                  ("synthetic.num_users", [30]), ("sampler", ["dns"]),
                  ("topk", [(10, 20)])]
  changed = experiments.with_overrides(config, [(f, v[0]) for f, v in axes])
  assert changed.synthetic.num_users == 30 and changed.topk == (10, 20)
  assert config.pool_size != 8  # the base config is not modified
  with pytest.raises(experiments.GridError, match="no such config field"):
    experiments.with_overrides(config, [("lerning_rate", "0.1")])
  with pytest.raises(experiments.GridError, match="not a valid int"):
    experiments.with_overrides(config, [("pool_size", "many")])


def test_split_config_flags():
  argv, overrides = experiments.split_config_flags(
      ["prog", "--grid=beta=0.1", "--config.num_epochs=5", "--config.synthetic.rank=4"])
  assert argv == ["prog", "--grid=beta=0.1"]
  assert overrides == [("num_epochs", "5"), ("synthetic.rank", "4")]


def test_plan_groups_replica_fields_into_vmapped_runs():
  config = _smoke_config()
  axes = experiments.typed_axes(config, experiments.parse_grid(
      "beta=0.05,0.1;pool_size=16,32;l2=0,0.01"))
  runs = experiments.plan_runs(config, axes, seeds=3)
  assert [r.name for r in runs] == ["pool_size=16,beta=0.05+0.1,l2=0+0.01,seeds=0-2",
                                    "pool_size=32,beta=0.05+0.1,l2=0+0.01,seeds=0-2"]
  for run in runs:
    run_config = experiments.with_overrides(config, run.overrides)
    trainer_order = train.replica_settings(run_config)
    assert len(run.settings) == len(trainer_order) == 12
    for mine, theirs in zip(run.settings, trainer_order):
      assert list(mine) == ["beta", "pool_size", "l2", "seed"]  # grid order
      assert (mine["beta"], mine["l2"], mine["seed"]) == (
          theirs["beta"], theirs["l2"], theirs["seed"])
      assert mine["pool_size"] == run_config.pool_size


def test_plan_without_vmap_runs_each_point_and_seed():
  config = _smoke_config(seed=7)
  axes = experiments.typed_axes(config, [("beta", ["0.05", "0.1"]), ("pool_size", ["4"])])
  runs = experiments.plan_runs(config, axes, seeds=2, vmap="no")
  assert [r.name for r in runs] == [
      "pool_size=4,beta=0.05,seed=7", "pool_size=4,beta=0.05,seed=8",
      "pool_size=4,beta=0.1,seed=7", "pool_size=4,beta=0.1,seed=8"]
  assert all(dict(r.overrides)["seed"] == r.settings[0]["seed"] for r in runs)
  assert all("num_replicas" not in dict(r.overrides) for r in runs)


def test_plan_does_not_vmap_automatic_reveals():
  config = _smoke_config(reveal_fraction=0.4, reveal_start=-1)
  axes = experiments.typed_axes(config, [("beta", ["0.1"])])
  assert len(experiments.plan_runs(config, axes, seeds=2, vmap="auto")) == 2
  with pytest.raises(experiments.GridError, match="reveal_start"):
    experiments.plan_runs(config, axes, seeds=2, vmap="yes")
  explicit = _smoke_config(reveal_fraction=0.4, reveal_start=2)
  assert len(experiments.plan_runs(explicit, axes, seeds=2, vmap="auto")) == 1


def test_plan_rejects_preset_replicas():
  with pytest.raises(experiments.GridError, match="--seeds"):
    experiments.plan_runs(_smoke_config(num_replicas=2), [], seeds=1)


# ----------------------------------------------------------------------------
# Aggregation and model selection (constructed tables).


def _row(beta, seed, valid, test):
  return {"run": f"beta={beta}", "beta": beta, "seed": seed, "best_epoch": 3,
          "valid/recall@50": valid, "test/recall@20": test / 2, "test/ndcg@20": test / 4,
          "test/recall@50": test, "test/ndcg@50": test / 3, "epochs_run": 5,
          "seconds": 1.0}


def test_best_setting_is_chosen_by_validation_not_test(tmp_path):
  # beta=0.1 has the better validation Recall, beta=0.2 the better test Recall.
  rows = [_row(0.1, 0, 0.30, 0.10), _row(0.1, 1, 0.34, 0.12),
          _row(0.2, 0, 0.28, 0.40), _row(0.2, 1, 0.29, 0.42)]
  settings = experiments.aggregate(rows, ["beta"])
  assert [s.values for s in settings] == [{"beta": 0.1}, {"beta": 0.2}]
  assert settings[0].mean["valid/recall@50"] == pytest.approx(0.32)
  assert settings[0].std["valid/recall@50"] == pytest.approx(0.04 / 2 ** 0.5)
  assert settings[1].mean["test/recall@50"] == pytest.approx(0.41)
  assert experiments.best_setting(settings, "valid/recall@50") == 0
  with pytest.raises(ValueError, match="validation"):
    experiments.best_setting(settings, "test/recall@50")
  text = experiments.aggregate_markdown(rows, ["beta"], "t")
  best_line = [l for l in text.splitlines() if "(best)" in l]
  assert len(best_line) == 1 and best_line[0].startswith("| **beta=0.1**")
  assert "0.3200 ± 0.0283" in best_line[0]
  assert "Best setting by valid/recall@50: beta=0.1 " in text
  # runs.csv round trip.
  experiments.write_csv(rows, tmp_path / "runs.csv")
  assert experiments.read_csv(tmp_path / "runs.csv") == rows


# ----------------------------------------------------------------------------
# A tiny sweep end to end.


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
  out = tmp_path_factory.mktemp("sweep")
  rows = sweep.sweep(SMOKE, "beta=0.1,0.3", seeds=2, out=str(out), overrides=NO_TENSORBOARD)
  return out, rows


def test_sweep_writes_rows_and_aggregate(finished_sweep):
  out, rows = finished_sweep
  [run_dir] = (out / "runs").iterdir()
  assert run_dir.name == "beta=0.1+0.3,seeds=0-1"  # one vmapped run
  assert [(r["beta"], r["seed"]) for r in rows] == [(0.1, 0), (0.1, 1), (0.3, 0), (0.3, 1)]
  assert experiments.read_csv(out / "runs.csv") == [
      {k: (float(v) if not isinstance(v, str) else v) for k, v in r.items()} for r in rows]
  summary = json.loads((run_dir / "summary.json").read_text())
  for row, replica in zip(rows, summary["replicas"]):
    assert row["test/recall@50"] == replica["test/recall@50"]
    assert 0 < row["valid/recall@50"] <= 1 and row["best_epoch"] >= 1
  text = (out / "aggregate.md").read_text()
  assert text.count("(best)") == 1 and "beta=0.3" in text


def test_sweep_reuses_finished_runs(finished_sweep):
  out, rows = finished_sweep
  summary = next((out / "runs").iterdir()) / "summary.json"
  before = summary.stat().st_mtime_ns
  assert sweep.sweep(SMOKE, "beta=0.1,0.3", seeds=2, out=str(out),
                     overrides=NO_TENSORBOARD) == rows
  assert summary.stat().st_mtime_ns == before


def test_sweep_resumes_an_unfinished_run(finished_sweep):
  # A run whose summary is missing resumes from its last checkpoint (here the
  # final epoch, so nothing is trained again) and writes the same summary.
  out, rows = finished_sweep
  run_dir = next((out / "runs").iterdir())
  metrics = (run_dir / "metrics.jsonl").read_text()
  (run_dir / "summary.json").unlink()
  again = sweep.sweep(SMOKE, "beta=0.1,0.3", seeds=2, out=str(out),
                      overrides=NO_TENSORBOARD)
  assert [r["test/recall@50"] for r in again] == [r["test/recall@50"] for r in rows]
  assert (run_dir / "metrics.jsonl").read_text() == metrics


def test_sweep_refuses_a_folder_of_another_config(finished_sweep):
  out, _ = finished_sweep
  with pytest.raises(experiments.GridError, match="another config"):
    sweep.sweep(SMOKE, "beta=0.1,0.3", seeds=2, out=str(out),
                overrides=NO_TENSORBOARD + [("num_epochs", "5")])


def test_vmapped_replica_matches_a_sequential_run(finished_sweep, tmp_path):
  out, rows = finished_sweep
  [alone] = sweep.sweep(SMOKE, "beta=0.3", seeds=1, out=str(tmp_path), vmap="no",
                        overrides=NO_TENSORBOARD + [("seed", "1")])
  [twin] = [r for r in rows if (r["beta"], r["seed"]) == (0.3, 1)]
  assert alone["best_epoch"] == twin["best_epoch"]
  for key in ("valid/recall@50", "test/recall@50", "test/ndcg@50"):
    assert alone[key] == pytest.approx(twin[key], abs=1e-4), key


def test_command_line_reuses_the_runs(finished_sweep):
  out, _ = finished_sweep
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  result = subprocess.run(
      [sys.executable, "launch/sweep.py", f"--config={SMOKE}", "--grid=beta=0.1,0.3",
       "--seeds=2", f"--out={out}", "--config.tensorboard=false"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.count("finished before") == 1
  bad = subprocess.run(
      [sys.executable, "launch/sweep.py", f"--config={SMOKE}", "--grid=bta=1",
       f"--out={out}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
      check=False)
  assert bad.returncode == 2 and "config.bta: no such config field" in bad.stderr

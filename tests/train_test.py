"""The trainer end to end on tiny configs: outputs, determinism, resume, replicas, errors."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import data as data_lib
from pdns_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
METRIC_KEYS = ("test/recall@20", "test/ndcg@20", "test/recall@50", "test/ndcg@50")


def _config(**overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.tensorboard = False
  for name, value in overrides.items():
    c[name] = value
  return c.lock()


def _metrics(summary):
  return {k: summary[k] for k in ("best_epoch", "valid/recall@50") + METRIC_KEYS}


def test_end_to_end_writes_outputs_with_metrics_in_range(tmp_path):
  summary = train.train_and_evaluate(_config(tensorboard=True), tmp_path)
  for name in ("config.json", "metrics.jsonl", "summary.json"):
    assert (tmp_path / name).is_file(), name
  assert (tmp_path / "checkpoints" / "latest").is_dir()
  assert (tmp_path / "checkpoints" / "best").is_dir()
  assert list((tmp_path / "tensorboard").iterdir())
  assert json.loads((tmp_path / "summary.json").read_text()) == pytest.approx(summary)
  for key in ("valid/recall@50",) + METRIC_KEYS:
    assert 0.0 <= summary[key] <= 1.0, key
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["epoch"] for l in lines] == [1, 2, 3]
  assert all(np.isfinite(l["loss"]) and 0 <= l["fn_hit_rate"] <= 1 for l in lines)
  best = max(lines, key=lambda l: l["valid/recall@50"])
  assert summary["best_epoch"] == best["epoch"]
  assert summary["test/recall@50"] == pytest.approx(best["test/recall@50"])


@pytest.mark.parametrize("sampler", ["mixgcf", "srns", "adasir_u", "advir"])
def test_samplers_train_lightgcn_at_smoke_scale(tmp_path, sampler):
  # Every sampler trains end to end with MF in its own test module (and the
  # others here and in losses_test with LightGCN); these four also go
  # through LightGCN's propagated layers: per-layer mixing, a memory, a pool,
  # a generator with an adversarial term.
  summary = train.train_and_evaluate(
      _config(sampler=sampler, num_epochs=1, pretrain_epochs=0), tmp_path)
  [line] = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert np.isfinite(line["loss"]) and line["loss"] > 0
  assert 0.0 <= line["fn_hit_rate"] <= 1.0
  for key in METRIC_KEYS:
    assert summary[key] == pytest.approx(line[key]), key
  assert summary["replicas"][0]["hparams"]["seed"] == 0


def test_training_improves_on_the_synthetic_data(tmp_path):
  # Learning works: 20 epochs of MF + PDNS beat the untrained model clearly.
  summary = train.train_and_evaluate(
      _config(model="mf", num_epochs=20, eval_every=20, learning_rate=0.01, batch_size=32),
      tmp_path / "a")
  untrained = train.train_and_evaluate(
      _config(model="mf", num_epochs=1, eval_every=1, learning_rate=1e-9), tmp_path / "b")
  assert summary["test/recall@20"] > untrained["test/recall@20"] + 0.1


def test_same_seed_same_metrics_and_other_seed_differs(tmp_path):
  a = train.train_and_evaluate(_config(), tmp_path / "a")
  b = train.train_and_evaluate(_config(), tmp_path / "b")
  c = train.train_and_evaluate(_config(seed=5), tmp_path / "c")
  assert _metrics(a) == _metrics(b)
  assert _metrics(a) != _metrics(c)


def test_rerun_after_finish_and_resume_after_stop_match_uninterrupted(tmp_path):
  full = train.train_and_evaluate(_config(num_epochs=4, patience=100), tmp_path / "full")
  part = tmp_path / "part"
  train.train_and_evaluate(_config(num_epochs=2, patience=100), part)
  resumed = train.train_and_evaluate(_config(num_epochs=4, patience=100), part)
  assert _metrics(resumed) == _metrics(full)
  lines = [json.loads(l) for l in (part / "metrics.jsonl").read_text().splitlines()]
  assert [l["epoch"] for l in lines] == [1, 2, 3, 4]
  again = train.train_and_evaluate(_config(num_epochs=4, patience=100), part)
  assert _metrics(again) == _metrics(full)


def _command(workdir, *extra):
  return [sys.executable, "-m", "pdns_jax.main", "--config=configs/synthetic.py:smoke",
          f"--workdir={workdir}", "--config.num_epochs=100", "--config.patience=1000",
          "--config.tensorboard=False", *extra]


def test_run_killed_mid_way_resumes_to_the_same_summary(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  full = tmp_path / "full"
  subprocess.run(_command(full), cwd=ROOT, env=env, check=True, capture_output=True)
  killed = tmp_path / "killed"
  proc = subprocess.Popen(_command(killed), cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  latest = killed / "checkpoints" / "latest"
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:
    steps = [int(p.name) for p in latest.glob("[0-9]*") if p.name.isdigit()]
    if steps and max(steps) >= 5:
      break
    time.sleep(0.05)
  assert proc.poll() is None, "the run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed / "summary.json").exists()
  subprocess.run(_command(killed), cwd=ROOT, env=env, check=True, capture_output=True)
  a = json.loads((full / "summary.json").read_text())
  b = json.loads((killed / "summary.json").read_text())
  assert _metrics(a) == _metrics(b)
  epochs = [json.loads(l)["epoch"] for l in (killed / "metrics.jsonl").read_text().splitlines()]
  assert epochs == list(range(1, 101))


def test_replicas_match_single_runs(tmp_path):
  many = train.train_and_evaluate(
      _config(num_replicas=2, replica_sweep="beta=0.1,0.4;learning_rate=0.01"), tmp_path / "m")
  assert len(many["replicas"]) == 4
  for replica in many["replicas"]:
    h = replica["hparams"]
    single = train.train_and_evaluate(
        _config(seed=h["seed"], beta=h["beta"], learning_rate=h["learning_rate"]),
        tmp_path / f"s{h['seed']}_{h['beta']}")
    assert replica["best_epoch"] == single["best_epoch"]
    for key in ("valid/recall@50",) + METRIC_KEYS:
      assert replica[key] == pytest.approx(single[key], abs=1e-5), (h, key)
  betas = {r["hparams"]["beta"] for r in many["replicas"]}
  assert betas == {0.1, 0.4}


def test_false_negative_reveal_excludes_fn_items_from_sampling(tmp_path):
  train.train_and_evaluate(
      _config(model="mf", sampler="dns", num_epochs=7, reveal_fraction=1.0, reveal_start=2,
              reveal_every=1, patience=100, pool_size=64), tmp_path)
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  revealed = [round(l["revealed"], 2) for l in lines]
  # Revealed after epoch 2: epochs 3..7 train with 20%, 40%, ... of the FN set excluded.
  assert revealed == [0.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
  assert lines[0]["fn_hit_rate"] > 0.02  # DNS picks planted positives often
  assert lines[-1]["fn_hit_rate"] == 0.0  # all revealed: none can be drawn


@pytest.mark.parametrize("field,value,message", [
    ("pool_size", 0, "config.pool_size"), ("beta", 0.0, "config.beta"),
    ("batch_size", 0, "config.batch_size"), ("sampler", "nope", "config.sampler"),
    ("model", "gru", "config.model"), ("topk", (20, 5000), "config.topk"),
    ("replica_sweep", "gamma=1", "config.replica_sweep"),
    ("reveal_fraction", 0.4, "config.reveal_fraction: revealing false negatives needs"),
    ("reveal_fraction", 0.1, r"config.reveal_fraction: must be one of 0, 0.2"),
    ("seed", -1, "config.seed"), ("seed", 2 ** 32, "config.seed"),
    ("pool_size", 5000, "config.pool_size: 5000 candidates")])
def test_bad_config_values_are_rejected_naming_the_field(tmp_path, field, value, message):
  overrides = {field: value}
  if field == "reveal_fraction" and value == 0.4:
    overrides["split"] = "paper"
  with pytest.raises(train.ConfigError, match=message):
    train.train_and_evaluate(_config(**overrides), tmp_path)
  assert not (tmp_path / "checkpoints").exists()


def test_unknown_dataset_and_missing_file_errors(tmp_path):
  with pytest.raises(data_lib.DataError, match="config.dataset"):
    train.train_and_evaluate(_config(dataset="netflix"), tmp_path)
  with pytest.raises(data_lib.DataError, match=r"nowhere/ml-100k/u.data.*grouplens"):
    train.train_and_evaluate(_config(dataset="ml100k", split="paper",
                                     data_dir=str(tmp_path / "nowhere")), tmp_path)


def test_non_finite_loss_stops_naming_epoch_and_step_and_keeps_checkpoint(tmp_path):
  train.train_and_evaluate(_config(model="mf", num_epochs=2), tmp_path)
  with pytest.raises(train.NonFiniteLossError, match=r"epoch 3, step \d+"):
    train.train_and_evaluate(_config(model="mf", num_epochs=4, beta=3e38,
                                     resume_changes="beta"), tmp_path)
  steps = [int(p.name) for p in (tmp_path / "checkpoints" / "latest").glob("[0-9]*")
           if p.name.isdigit()]
  assert max(steps) == 2  # nothing saved after the last good epoch


def test_relative_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  summary = train.train_and_evaluate(_config(num_epochs=1), "relative/run")
  assert (tmp_path / "relative" / "run" / "summary.json").is_file()
  assert summary["best_epoch"] == 1


def test_resuming_with_a_differently_shaped_model_names_the_workdir(tmp_path):
  train.train_and_evaluate(_config(num_epochs=1), tmp_path)
  with pytest.raises(train.ConfigError, match=r"embed_dim: 8 in the workdir, 16 now"):
    train.train_and_evaluate(_config(num_epochs=2, embed_dim=16), tmp_path)
  with pytest.raises(train.ConfigError, match="differently shaped run"):
    train.train_and_evaluate(_config(num_epochs=2, embed_dim=16, resume_changes="embed_dim"),
                             tmp_path)


def test_resume_when_best_was_saved_but_latest_was_not(tmp_path):
  # As if killed between writing checkpoints/best and checkpoints/latest at
  # epoch 3: resuming from epoch 2 redoes epoch 3, which "best" already holds.
  config = lambda epochs: _config(model="mf", num_epochs=epochs, patience=100,
                                  learning_rate=0.002)
  train.train_and_evaluate(config(2), tmp_path)
  shutil.copytree(tmp_path / "checkpoints" / "latest", tmp_path / "latest_at_2")
  first = train.train_and_evaluate(config(3), tmp_path)
  assert first["best_epoch"] == 3  # so checkpoints/best holds step 3
  shutil.rmtree(tmp_path / "checkpoints" / "latest")
  shutil.move(tmp_path / "latest_at_2", tmp_path / "checkpoints" / "latest")
  again = train.train_and_evaluate(config(3), tmp_path)
  assert _metrics(again) == _metrics(first)

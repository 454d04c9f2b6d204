"""Trusting a workdir: refused config mixes, the lock, damaged checkpoints and logs.

Each test fails on the code before the "Trust a workdir" issue: a resume with
another config mixed two runs, two processes shared a workdir, a damaged
checkpoint or a cut metrics line made a workdir unusable.
"""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import checkpoints
from pdns_jax import program as program_lib
from pdns_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS = ("best_epoch", "valid/recall@50", "test/recall@50", "test/ndcg@50")


def _config(**overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.update(dict(tensorboard=False, model="mf", patience=100, eval_every=1), **overrides)
  return c.lock()


def _metrics(summary):
  return {k: summary[k] for k in KEYS}


def _lines(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """The 4-epoch run every resumed one must reproduce."""
  return train.train_and_evaluate(_config(num_epochs=4), tmp_path_factory.mktemp("full"))


def test_resume_with_another_config_is_refused_naming_the_fields(tmp_path):
  train.train_and_evaluate(_config(num_epochs=2), tmp_path)
  stored = (tmp_path / "config.json").read_text()
  lines = (tmp_path / "metrics.jsonl").read_text()
  with pytest.raises(train.ConfigError) as error:
    train.train_and_evaluate(_config(num_epochs=3, data_seed=7, sampler="rns"), tmp_path)
  assert "data_seed: 0 in the workdir, 7 now" in str(error.value)
  assert 'sampler: "pdns" in the workdir, "rns" now' in str(error.value)
  assert "--config.resume_changes=data_seed,sampler" in str(error.value)
  assert (tmp_path / "config.json").read_text() == stored  # nothing rewritten
  assert (tmp_path / "metrics.jsonl").read_text() == lines


def test_a_field_added_since_the_run_resumes_at_its_default(tmp_path, uninterrupted):
  # As if the workdir was written before `valid_order` existed.
  train.train_and_evaluate(_config(num_epochs=2), tmp_path)
  stored = json.loads((tmp_path / "config.json").read_text())
  del stored["valid_order"]
  (tmp_path / "config.json").write_text(json.dumps(stored))
  assert _metrics(train.train_and_evaluate(_config(num_epochs=4), tmp_path)) == _metrics(
      uninterrupted)
  (tmp_path / "config.json").write_text(json.dumps(stored))
  with pytest.raises(train.ConfigError, match='valid_order: "time" in the workdir, "random"'):
    train.train_and_evaluate(_config(num_epochs=5, valid_order="random"), tmp_path)


def test_allowed_change_is_recorded_and_a_new_learning_rate_takes_effect(tmp_path):
  train.train_and_evaluate(_config(num_epochs=2), tmp_path)
  config = _config(num_epochs=3, learning_rate=0.05, resume_changes="learning_rate")
  train.train_and_evaluate(config, tmp_path)
  [event] = [l for l in _lines(tmp_path) if "event" in l]
  assert event == {"epoch": 2, "event": "resume_changes",
                   "changes": {"learning_rate": [0.005, 0.05]}}
  assert json.loads((tmp_path / "config.json").read_text())["resume_changes"] == "learning_rate"
  like = program_lib.build_program(config).init_state()
  state, _, _ = checkpoints.Checkpoints(tmp_path).restore(like)
  np.testing.assert_allclose(state.opt_state.hyperparams["learning_rate"], [0.05])


def test_a_second_run_on_a_locked_workdir_fails_naming_the_holder(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import pathlib, sys, time\n"
       "from pdns_jax import workdir\n"
       f"lock = workdir.claim(pathlib.Path({str(tmp_path)!r}))\n"
       "print('locked', flush=True)\ntime.sleep(120)"],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(train.ConfigError, match=f"in use by another run \\(pid {holder.pid}\\)"):
      train.train_and_evaluate(_config(num_epochs=1), tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The kernel released the lock of the killed holder: no stale lock.
  assert train.train_and_evaluate(_config(num_epochs=1), tmp_path)["best_epoch"] == 1


def _newest_step(workdir, which="latest"):
  folder = workdir / "checkpoints" / which
  return folder / str(max(int(p.name) for p in folder.iterdir() if p.name.isdigit()))


def _damage(step: pathlib.Path, how: str) -> None:
  data = sorted(p for p in (step / "state").rglob("*") if p.is_file() and p.parent.name == "d")
  if how == "truncate":
    for path in data:
      path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
  elif how == "manifest":
    for path in (step / "state").rglob("manifest.ocdbt"):
      path.unlink()
  elif how == "flip":
    path = max(data, key=lambda p: p.stat().st_size)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["truncate", "manifest", "flip"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path, uninterrupted, how):
  train.train_and_evaluate(_config(num_epochs=3), tmp_path)
  _damage(_newest_step(tmp_path), how)
  resumed = train.train_and_evaluate(_config(num_epochs=4), tmp_path)
  assert _metrics(resumed) == _metrics(uninterrupted)
  assert [l["epoch"] for l in _lines(tmp_path)] == [1, 2, 3, 4]


def test_every_checkpoint_damaged_is_a_clear_error(tmp_path):
  train.train_and_evaluate(_config(num_epochs=2), tmp_path)
  for step in (tmp_path / "checkpoints" / "latest").iterdir():
    if step.name.isdigit():
      _damage(step, "manifest")
  with pytest.raises(train.ConfigError, match=r"every checkpoint in .*checkpoints/latest is "
                     r"damaged; delete .*checkpoints and metrics.jsonl"):
    train.train_and_evaluate(_config(num_epochs=3), tmp_path)


def test_a_metrics_line_cut_by_a_kill_does_not_block_resuming(tmp_path, uninterrupted):
  train.train_and_evaluate(_config(num_epochs=2), tmp_path)
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"epoch": 3, "loss": 0.69, "valid/rec')
  resumed = train.train_and_evaluate(_config(num_epochs=4), tmp_path)
  assert _metrics(resumed) == _metrics(uninterrupted)
  assert [l["epoch"] for l in _lines(tmp_path)] == [1, 2, 3, 4]


def test_workdir_that_is_a_file_and_absurd_sizes(tmp_path, caplog):
  (tmp_path / "file").write_text("x")
  with pytest.raises(train.ConfigError, match="is a file, not a folder"):
    train.train_and_evaluate(_config(num_epochs=1), tmp_path / "file")
  summary = train.train_and_evaluate(_config(num_epochs=1, batch_size=10 ** 6), tmp_path / "b")
  assert summary["best_epoch"] == 1
  assert "training with batches of" in caplog.text


def _command(workdir):
  return [sys.executable, "-m", "pdns_jax.main", "--config=configs/synthetic.py:smoke",
          f"--workdir={workdir}", "--config.num_epochs=60", "--config.patience=1000",
          "--config.tensorboard=False", "--config.model=mf", "--config.eval_every=2"]


def test_random_kill_then_cut_log_and_damaged_checkpoint_still_resume_exactly(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  full = tmp_path / "full"
  subprocess.run(_command(full), cwd=ROOT, env=env, check=True, capture_output=True)
  killed = tmp_path / "killed"
  rng = random.Random(0)
  for _ in range(2):  # two kills at random points
    proc = subprocess.Popen(_command(killed), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = rng.randint(6, 40)
    deadline = time.time() + 120
    latest = killed / "checkpoints" / "latest"
    while time.time() < deadline and proc.poll() is None:
      steps = [int(p.name) for p in latest.glob("[0-9]*") if p.name.isdigit()]
      if steps and max(steps) >= target:
        break
      time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(killed / "metrics.jsonl", "a") as f:
      f.write('{"epoch": 99, "lo')  # as if cut mid-line
    _damage(_newest_step(killed), "flip")
  subprocess.run(_command(killed), cwd=ROOT, env=env, check=True, capture_output=True)
  a = json.loads((full / "summary.json").read_text())
  b = json.loads((killed / "summary.json").read_text())
  assert _metrics(a) == _metrics(b)
  assert [l["epoch"] for l in _lines(killed)] == list(range(2, 61, 2))


def test_init_from_starts_from_an_earlier_runs_embeddings(tmp_path):
  first = tmp_path / "rns"
  train.train_and_evaluate(_config(num_epochs=2, sampler="rns"), first)
  config = _config(num_epochs=1, sampler="irgan", init_from=str(first), eval_every=1)
  program = program_lib.build_program(config)
  saved = checkpoints.read_params(first)
  state = program.init_state(saved)
  np.testing.assert_array_equal(state.params["user"], saved["user"])
  np.testing.assert_array_equal(state.opt_state.inner_state[0].mu["user"], 0.0)  # fresh Adam
  assert train.train_and_evaluate(config, tmp_path / "gan")["best_epoch"] == 1
  for overrides, message in (({"init_from": str(tmp_path / "none")}, "not a training workdir"),
                             ({"init_from": str(first), "embed_dim": 4}, "embed_dim: 8 there")):
    with pytest.raises(train.ConfigError, match=f"config.init_from: .*{message}"):
      train.train_and_evaluate(_config(sampler="irgan", **overrides), tmp_path / "bad")


def test_a_workdir_that_cannot_be_written_is_a_clear_error(tmp_path):
  # Tests run as root, which may write anywhere: a folder where the lock file
  # must go fails the same way a read-only workdir does (an OSError on open).
  (tmp_path / ".lock").mkdir()
  with pytest.raises(train.ConfigError, match=r"--workdir .*: cannot write there"):
    train.train_and_evaluate(_config(num_epochs=1), tmp_path)

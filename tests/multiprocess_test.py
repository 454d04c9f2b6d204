"""config.distributed: two processes on localhost (jax.distributed, gloo) train one run.

Each test starts `python -m pdns_jax.main` twice (process ids 0 and 1, one CPU
device each, `--config.mesh=data=-1` spanning both) on a free port. Tolerance:
metrics equal to 1e-5 against one process (the all-reduces may add floats in
another order; seen: the valid Recall@50 differed by 6e-8, the rest equal).
Seen: the whole file took 135 s on 2 cores shared with other jobs (load
average 13; 65 s of CPU), mostly start-up and XLA compiles: 55 s for the
paired runs, 62 s for the kill test, 12 s for the count mismatch.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from configs import synthetic as synthetic_config
from pdns_jax import config as config_lib
from pdns_jax import distributed
from pdns_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 10  # config.distributed.timeout_s: heartbeats, joining
# MF keeps the compiles short; 5 epochs with a checkpoint after each leave
# time to kill a process after the first one.
FIELDS = dict(model="mf", num_epochs=5, eval_every=1, patience=100, tensorboard=False)


def _flags(port: int, num_processes: int, process_id: int, workdir) -> list[str]:
  return (["--config=configs/synthetic.py:smoke", "--config.mesh=data=-1",
           f"--workdir={workdir}", "--config.distributed.coordinator_address="
           f"127.0.0.1:{port}", f"--config.distributed.num_processes={num_processes}",
           f"--config.distributed.process_id={process_id}",
           f"--config.distributed.timeout_s={TIMEOUT_S}"] +
          [f"--config.{k}={v}" for k, v in FIELDS.items()])


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(workdir, counts=(2, 2)) -> list[subprocess.Popen]:
  """Process i of a run on localhost, told that the run has counts[i] processes."""
  port = _free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one CPU device per process
  return [subprocess.Popen([sys.executable, "-m", "pdns_jax.main",
                            *_flags(port, count, i, workdir)], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i, count in enumerate(counts)]


def _finish(processes, timeout=300) -> list[tuple[int, str, str]]:
  out = []
  for p in processes:
    stdout, stderr = p.communicate(timeout=timeout)
    out.append((p.returncode, stdout, stderr))
  return out


def _metrics(summary: dict) -> dict:
  return {k: v for k, v in summary.items() if k.startswith(("best_epoch", "valid/", "test/"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(one process's metrics, two processes' workdir, their (rc, stdout, stderr)).

  The two-process run goes on in the background while this process trains
  the same run on one device: the two processes spend much of their time
  waiting for each other's collectives.
  """
  workdir = tmp_path_factory.mktemp("two")
  processes = _start(workdir)
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.update(**FIELDS)
  one = _metrics(train.train_and_evaluate(c.lock(), tmp_path_factory.mktemp("one")))
  return one, workdir, _finish(processes)


def test_two_processes_train_the_same_run_as_one(runs):
  one_process, workdir, results = runs
  for rc, _, stderr in results:
    assert rc == 0, stderr[-3000:]
  summary = json.loads((workdir / "summary.json").read_text())
  assert _metrics(summary) == pytest.approx(one_process, abs=1e-5)
  assert summary["epochs_run"] == FIELDS["num_epochs"]
  # Process 0 alone reports: one metrics line per evaluation, one final line.
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["epoch"] for l in lines] == list(range(1, FIELDS["num_epochs"] + 1))
  assert "final" in results[0][1] and "final" not in results[1][1]
  # Each process holds only its half of the training pairs on its device.
  held = [re.search(r"training pairs: (\d+), split by rows over 2 devices; this process "
                    r"holds (\d+) rows", stderr) for _, _, stderr in results]
  assert all(held), results[0][2][-2000:]
  for match in held:
    assert int(match[2]) == -(-int(match[1]) // 2)


def _steps(workdir: pathlib.Path) -> list[int]:
  folder = workdir / "checkpoints" / "latest"
  return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())


def test_a_killed_process_ends_its_peer_and_the_rerun_resumes(tmp_path, runs):
  processes = _start(tmp_path)
  start = time.time()
  while not _steps(tmp_path):
    assert time.time() - start < 200 and processes[0].poll() is None, "no checkpoint"
    time.sleep(0.02)
  processes[1].send_signal(signal.SIGKILL)
  killed = time.time()
  (rc_survivor, _, stderr), (rc_killed, _, _) = _finish(processes, timeout=TIMEOUT_S + 60)
  # The survivor fails in its next collective (gloo: connection reset), and
  # its exit waits at most for the heartbeat timeout, never for ever.
  assert rc_killed == -signal.SIGKILL and rc_survivor != 0, stderr[-2000:]
  assert time.time() - killed < TIMEOUT_S + 30
  assert not (tmp_path / "summary.json").exists()  # killed before the end
  saved = _steps(tmp_path)

  results = _finish(_start(tmp_path))
  for rc, _, stderr in results:
    assert rc == 0, stderr[-3000:]
  assert f"resuming {tmp_path} from epoch {saved[-1]}" in results[0][2]
  resumed = json.loads((tmp_path / "summary.json").read_text())
  uninterrupted = json.loads((runs[1] / "summary.json").read_text())
  assert _metrics(resumed) == pytest.approx(_metrics(uninterrupted), abs=1e-6)
  epochs = [json.loads(l)["epoch"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert epochs == list(range(1, FIELDS["num_epochs"] + 1))


def test_processes_that_disagree_on_their_count_stop_with_the_field_named(tmp_path):
  workdir = tmp_path / "run"
  results = _finish(_start(workdir, counts=(2, 3)), timeout=TIMEOUT_S + 60)
  for rc, _, stderr in results:
    assert rc == 2, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith(
        "error: config.distributed.num_processes: the processes were started with "
        "num_processes=[2, 3], but 2 joined"), stderr[-2000:]
  assert not workdir.exists()  # refused before anything was written


def test_impossible_distributed_fields_are_refused_before_jax_starts(tmp_path):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  for fields, message in (
      (dict(num_processes=2, coordinator_address=""), "coordinator_address: several"),
      (dict(num_processes=2, coordinator_address="127.0.0.1:1", process_id=2),
       r"process_id: must lie in \[0, 2\)"),
      (dict(num_processes=0), "num_processes: must be >= 1")):
    c.distributed.update(dict(coordinator_address="", num_processes=1, process_id=0),
                         **fields)
    with pytest.raises(config_lib.ConfigError, match=f"config.distributed.{message}"):
      distributed.initialize(c)
    with pytest.raises(config_lib.ConfigError, match="config.distributed"):
      train.train_and_evaluate(c, tmp_path / "run")
    assert not (tmp_path / "run").exists()
  assert not distributed.jax.distributed.is_initialized()


def test_a_second_process_zero_is_refused_before_jax_starts(tmp_path):
  # A repeated process_id 0 finds the coordinator's port taken (gRPC would
  # share it and both processes would end in an abort after the timeout).
  with socket.socket() as taken:
    taken.bind(("", 0))
    taken.listen()
    port = taken.getsockname()[1]
    c = synthetic_config.get_config("smoke")
    c.unlock()
    c.distributed.update(num_processes=2, process_id=0,
                         coordinator_address=f"127.0.0.1:{port}")
    with pytest.raises(config_lib.ConfigError,
                       match=f"coordinator_address: port {port} is in use"):
      distributed.initialize(c)
    with pytest.raises(config_lib.ConfigError, match="process_id"):
      train.train_and_evaluate(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()
  assert not distributed.jax.distributed.is_initialized()

"""The training loop: epochs, evaluation, early stopping, checkpoints, metrics.

`train_and_evaluate(config, workdir)` is what the CLI and the notebooks call.
The pieces it drives live one module each: `program.py` builds the run
(checks, data, jitted functions), `step.py` is the compiled epoch,
`checkpoints.py` saves and restores, `reporting.py` writes and prints,
`simulation.py` is the false-negative reveal schedule.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from configs import default as default_config
from pdns_jax import checkpoints as checkpoints_lib
from pdns_jax import distributed
from pdns_jax import program as program_lib
from pdns_jax import reporting
from pdns_jax import simulation
from pdns_jax import workdir as workdir_lib
from pdns_jax.config import ConfigError
from pdns_jax.program import check_config  # pylint: disable=unused-import

__all__ = ["ConfigError", "NonFiniteLossError", "check_config", "train_and_evaluate"]


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


@dataclasses.dataclass
class Tracker:
  """Model selection for one replica: best validation metric and patience."""

  best_epoch: int = -1
  best_valid: float = -math.inf
  best_metrics: dict = dataclasses.field(default_factory=dict)
  bad_evals: int = 0  # evaluations since the best one
  stopped: bool = False

  def update(self, epoch: int, metrics: dict, key: str, patience: int) -> bool:
    """Returns whether this evaluation is the new best."""
    if self.stopped:
      return False
    if metrics[key] > self.best_valid:
      self.best_epoch, self.best_valid = epoch, metrics[key]
      self.best_metrics, self.bad_evals = dict(metrics), 0
      return True
    self.bad_evals += 1
    self.stopped = self.bad_evals >= patience
    return False

  def result(self, key: str, hparams: dict) -> dict:
    """This replica's entry of summary.json: test metrics at the best validation epoch."""
    tests = {k: v for k, v in self.best_metrics.items() if k.startswith("test/")}
    return {"hparams": hparams, "best_epoch": self.best_epoch, key: self.best_valid, **tests}


def _select(pick: jax.Array, new, old):
  """Per replica, new where pick else old."""
  def choose(a, b):
    return jnp.where(pick.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
  return jax.tree_util.tree_map(choose, new, old)


def _restore_or_init(program: program_lib.Program, checkpoints, workdir):
  """(state, best state, meta): from the workdir's latest intact checkpoint, else fresh."""
  state = program.init_state()
  meta = {"epoch": 0, "train_seconds": 0.0, "epoch_seconds": [], "reveal_start":
          int(program.config.reveal_start),
          "trackers": [dataclasses.asdict(Tracker()) for _ in program.settings]}
  try:
    restored = checkpoints.restore(state)
  except checkpoints_lib.ShapeMismatch as e:
    raise ConfigError(f"workdir {workdir} holds checkpoints of a differently shaped run "
                      f"({e}); use a new --workdir, or the config that wrote them") from e
  except checkpoints_lib.Damaged as e:
    raise ConfigError(f"workdir {workdir}: {e}") from e
  if restored is None:
    if program.config.init_from:  # an earlier run's embeddings (PAPER.md 8.4: GAN samplers)
      saved = checkpoints_lib.read_params(
          pathlib.Path(program.config.init_from).expanduser().resolve())
      state = program.init_state(saved)
      logging.info("starting from the embeddings of %s", program.config.init_from)
    return state, jax.tree_util.tree_map(jnp.copy, state), meta  # state is donated
  state, best_state, meta = restored
  logging.info("resuming %s from epoch %d", workdir, meta["epoch"])
  # The learning rate lives in the optimiser state: a changed one (allowed by
  # config.resume_changes) takes effect from here on.
  rates = jnp.asarray([s["learning_rate"] for s in program.settings], jnp.float32)
  old_rates = state.opt_state.hyperparams["learning_rate"]
  if program.spec.mesh is not None:  # placed like the rest, on every process's devices
    rates = jax.device_put(rates, old_rates.sharding)
  hyper = dict(state.opt_state.hyperparams, learning_rate=rates)
  return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper)), best_state, meta


def _claim(config, workdir: pathlib.Path):
  """Locks the workdir and checks a resumed run's config; (lock, changes to record).

  With several processes, process 0 alone locks and writes; every process
  checks the stored config (so all refuse alike), and all stop if any failed.
  """
  lock, changes, error, stored = None, {}, None, workdir / "config.json"
  try:
    if distributed.is_primary():
      lock = workdir_lib.claim(workdir)
    if stored.is_file() and any((workdir / "checkpoints" / "latest").glob("[0-9]*")):
      changes = workdir_lib.resume_changes(
          json.loads(stored.read_text()), json.loads(config.to_json()), config.resume_changes,
          json.loads(default_config.get_config().to_json()))
  except ConfigError as e:
    error = e
  try:
    distributed.agree(error)
  except ConfigError:
    if lock is not None:  # now: the error held here would keep it open until collected
      lock.close()
    raise
  if distributed.is_primary():
    reporting.write_json(stored, json.loads(config.to_json()))
  return lock, changes


def _check_finite(out: dict, epoch: int, program, workdir) -> None:
  bad = [r for r, s in enumerate(out["first_bad_step"]) if s >= 0]
  if bad:
    raise NonFiniteLossError(
        f"non-finite loss in epoch {epoch}, step {int(out['first_bad_step'][bad[0]])} "
        f"(replica {bad[0]}: {program.settings[bad[0]]}); the last good checkpoint is kept "
        f"in {workdir / 'checkpoints'}. Try a smaller learning_rate.")


def train_and_evaluate(config, workdir: str | pathlib.Path) -> dict:
  """Trains as `config` says, writing outputs into `workdir`; resumes if it can.

  Writes config.json, metrics.jsonl (one line per evaluation and replica),
  summary.json, orbax checkpoints (checkpoints/latest, checkpoints/best) and a
  TensorBoard event file.

  Returns:
    The summary (see `reporting.summary_of`): per replica its hparams, best
    epoch, valid metric and test metrics at that epoch; train_seconds,
    seconds_per_epoch, epochs_run, data.
  """
  workdir = pathlib.Path(workdir).resolve()  # orbax wants absolute paths
  workdir_lib.check_path(workdir)
  distributed.initialize(config)  # a no-op for one process, or once main.py has done it
  program = program_lib.build_program(config)
  lock, changes = _claim(config, workdir)  # pylint: disable=unused-variable
  select_key = f"valid/recall@{max(program.topk)}"
  checkpoints = checkpoints_lib.Checkpoints(workdir, program.to_saved, program.from_saved)
  state, best_state, meta = _restore_or_init(program, checkpoints, workdir)
  trackers = [Tracker(**t) for t in meta["trackers"]]
  epoch, reveal_start, reveals = meta["epoch"], meta["reveal_start"], program.reveals
  stage = reveals.stage_at(epoch, reveal_start)
  data = program.train_data(stage)
  # A bar only on a terminal: in a log file its carriage returns are noise.
  progress = config.progress and sys.stderr.isatty() and distributed.is_primary()
  bar = tqdm.tqdm(total=config.num_epochs, initial=epoch, disable=not progress,
                  desc=f"{config.dataset}/{config.model}/{config.sampler}", unit="epoch")
  reporter = reporting.Reporter(workdir, last_epoch=epoch, tensorboard=config.tensorboard,
                                progress_bar=bar if progress else None,
                                writes=distributed.is_primary())
  if changes:
    logging.warning("resuming with changed %s (config.resume_changes)", changes)
    reporter.record_event({"epoch": epoch, "event": "resume_changes", "changes": changes})
  evals_since_save, window = 0, {"loss": 0.0, "fn_hits": 0.0, "count": 0.0}
  loop_start = window_start = time.time()
  while epoch < config.num_epochs and not all(t.stopped for t in trackers):
    epoch_start = time.time()
    if program.refresh_fn is not None:
      state = program.refresh_fn(state, data, program.graph)
    epoch_fn = program.pretrain_fn if epoch < program.pretrain_epochs else program.epoch_fn
    state, out = epoch_fn(state, program.hparams, data, program.graph)
    out = distributed.to_host(out)
    meta["epoch_seconds"].append(time.time() - epoch_start)
    epoch += 1
    _check_finite(out, epoch, program, workdir)
    window = {k: (out[k] if k == "loss" else window[k] + out[k]) for k in window}
    bar.update(1)
    if epoch % config.eval_every and epoch != config.num_epochs:
      continue

    results = distributed.to_host(program.eval_fn(state.params, program.graph,
                                                  program.valid_set, program.test_set))
    improved, lines = np.zeros(len(trackers), bool), []
    for r, tracker in enumerate(trackers):
      metrics = {name: float(v[r]) for name, v in results.items()}
      improved[r] = tracker.update(epoch, metrics, select_key, config.patience)
      line = {"epoch": epoch, "loss": float(window["loss"][r]),
              "seconds": time.time() - window_start, **metrics}
      if program.spec.has_fn:
        line["fn_hit_rate"] = float(window["fn_hits"][r] / max(window["count"][r], 1.0))
        line["revealed"] = reveals.share(stage)
      lines.append(line if len(trackers) == 1 else dict(line, replica=r))
    reporter.record(lines)
    bar.set_postfix(loss=f"{lines[0]['loss']:.4f}",
                    **{select_key: f"{lines[0][select_key]:.4f}"})
    window, window_start = {k: 0.0 for k in window}, time.time()
    if improved.any():
      best_state = _select(jnp.asarray(improved), state, best_state)
    if reveals.stages and reveal_start < 0 and simulation.has_peaked(trackers[0].bad_evals):
      reveal_start = epoch  # one replica only (check_config): its validation peaked
    if reveals.stage_at(epoch, reveal_start) != stage:
      stage = reveals.stage_at(epoch, reveal_start)
      data = program.train_data(stage)
      logging.info("epoch %d: revealed %.0f%% of the FN set to the sampler", epoch,
                   100 * reveals.share(stage))
    meta.update(epoch=epoch, trackers=[dataclasses.asdict(t) for t in trackers],
                reveal_start=reveal_start,
                train_seconds=meta["train_seconds"] + time.time() - loop_start)
    loop_start, evals_since_save = time.time(), evals_since_save + 1
    done = epoch >= config.num_epochs or all(t.stopped for t in trackers)
    if evals_since_save >= config.checkpoint_every or done or improved.any():
      checkpoints.save(epoch, state, meta, best_state if improved.any() else None)
      evals_since_save = 0
  bar.close()
  reporter.close()

  summary = reporting.summary_of(
      [t.result(select_key, s) for t, s in zip(trackers, program.settings)],
      {"train_seconds": meta["train_seconds"],
       "seconds_per_epoch": float(np.median(meta["epoch_seconds"]))
       if meta["epoch_seconds"] else 0.0,
       "epochs_run": epoch, "data": program.split.description})
  if distributed.is_primary():
    reporting.write_json(workdir / "summary.json", summary)
  logging.info("summary: %s", summary)
  return summary

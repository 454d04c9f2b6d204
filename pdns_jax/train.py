"""The training loop: epochs on device, evaluation, early stopping, checkpoints, metrics.

One epoch is one compiled program (`train_epoch`): on-device shuffling, fixed
batches (the ragged tail padded and masked), candidate sampling with exact
exclusion, propagation, loss and Adam update in a `lax.scan`. Several runs
that differ only in seed, beta, alpha, l2 or learning rate train together as
replicas: the state carries a leading replica axis and the epoch is vmapped.
A single run is one replica.

`train_and_evaluate(config, workdir)` is what the CLI and the notebooks call.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import pathlib
import time
from typing import Any

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm

from pdns_jax import data as data_lib
from pdns_jax.data import stats as data_stats
from pdns_jax import evaluate as eval_lib
from pdns_jax import graph as graph_lib
from pdns_jax import losses
from pdns_jax import models
from pdns_jax import samplers

# Fields a replica may vary; everything else is shared by all replicas.
REPLICA_FIELDS = ("seed", "beta", "alpha", "l2", "learning_rate")
REVEAL_STEP = 0.2  # the simulation reveals the FN set in 20% subsets (PAPER.md 8.3)


class ConfigError(ValueError):
  """An impossible or unknown config value; the message names the field."""


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree (leading replica axis)."""

  step: jax.Array
  epoch: jax.Array
  params: dict
  opt_state: Any
  key: jax.Array


@flax.struct.dataclass
class TrainData:
  """Device arrays an epoch reads: training pairs and the per-user sorted sets."""

  users: jax.Array
  items: jax.Array
  exclude: samplers.SortedSets  # never drawn as negatives: train (+ revealed FN)
  false_negatives: samplers.SortedSets  # FN set, for the hit rate


@dataclasses.dataclass(frozen=True)
class Spec:
  """The static shape of a run: what changes it recompiles the step."""

  model: models.Model
  sampler: str
  pool_size: int
  batch_size: int
  num_train: int
  has_fn: bool


def make_optimizer(learning_rate) -> optax.GradientTransformation:
  # The learning rate lives in the optimiser state, so replicas can differ in it.
  return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


# ----------------------------------------------------------------------------
# Config checks.


def check_config(config) -> None:
  """Rejects unknown names and impossible values before any compute."""
  def need(ok, field, why):
    if not ok:
      raise ConfigError(f"config.{field}: {why} (got {config[field]!r})")
  need(config.model in models.MODELS, "model", f"must be one of {models.MODELS}")
  need(config.sampler in samplers.SAMPLERS, "sampler",
       f"must be one of {samplers.SAMPLERS}")
  need(config.propagation in graph_lib.PROPAGATIONS, "propagation",
       f"must be one of {graph_lib.PROPAGATIONS}")
  need(config.split in ("paper", "fn"), "split", "must be 'paper' or 'fn'")
  need(config.pool_size >= 1, "pool_size", "must be >= 1")
  need(config.beta > 0, "beta", "must be > 0")
  need(0 <= config.alpha <= 1, "alpha", "must lie in [0, 1]")
  need(config.learning_rate > 0, "learning_rate", "must be > 0")
  need(config.l2 >= 0, "l2", "must be >= 0")
  need(config.batch_size >= 1, "batch_size", "must be >= 1")
  need(config.embed_dim >= 1, "embed_dim", "must be >= 1")
  need(config.num_layers >= 1 or config.model == "mf", "num_layers",
       "LightGCN needs >= 1 layer")
  need(config.num_epochs >= 1, "num_epochs", "must be >= 1")
  need(config.eval_every >= 1, "eval_every", "must be >= 1")
  need(config.patience >= 1, "patience", "must be >= 1")
  need(config.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")
  need(config.num_replicas >= 1, "num_replicas", "must be >= 1")
  need(len(config.topk) >= 1 and all(int(k) >= 1 for k in config.topk), "topk",
       "must be a non-empty tuple of positive cut-offs")
  need(0 <= config.reveal_fraction <= 1, "reveal_fraction", "must lie in [0, 1]")
  need(config.reveal_fraction == 0 or config.split == "fn", "reveal_fraction",
       "revealing false negatives needs config.split='fn'")
  need(config.reveal_every >= 1, "reveal_every", "must be >= 1")
  replica_settings(config)  # parses replica_sweep


def check_config_against_data(config, split: data_lib.Split) -> None:
  if max(config.topk) > split.num_items:
    raise ConfigError(f"config.topk: cut-off {max(config.topk)} is larger than the "
                      f"{split.num_items} items of {split.name}")


def replica_settings(config) -> list[dict]:
  """Expands num_replicas (seeds) x replica_sweep into one dict per replica."""
  axes = {}
  for part in filter(None, (p.strip() for p in config.replica_sweep.split(";"))):
    name, _, values = part.partition("=")
    name = name.strip()
    if name not in REPLICA_FIELDS[1:] or not values:
      raise ConfigError(f"config.replica_sweep: {part!r} is not 'field=v1,v2' with a "
                        f"field in {REPLICA_FIELDS[1:]}")
    try:
      axes[name] = [float(v) for v in values.split(",")]
    except ValueError:
      raise ConfigError(f"config.replica_sweep: {part!r} has a non-numeric value") from None
  base = {name: config[name] for name in REPLICA_FIELDS}
  settings = []
  for combo in itertools.product(*axes.values()):
    for r in range(config.num_replicas):
      setting = dict(base, **dict(zip(axes, combo)))
      setting["seed"] = int(config.seed) + r
      settings.append(setting)
  for s in settings:
    if s["beta"] <= 0 or not 0 <= s["alpha"] <= 1 or s["l2"] < 0 or s["learning_rate"] <= 0:
      raise ConfigError(f"config.replica_sweep: impossible value in {s}")
  return settings


# ----------------------------------------------------------------------------
# The pure, jitted part.


def init_state(model: models.Model, seed, learning_rate) -> TrainState:
  """One replica's initial state (vmap over seed and learning_rate for many)."""
  key = jax.random.PRNGKey(seed)
  params = model.init(jax.random.fold_in(key, 0))
  return TrainState(step=jnp.zeros((), jnp.int32), epoch=jnp.zeros((), jnp.int32),
                    params=params, opt_state=make_optimizer(learning_rate).init(params),
                    key=key)


def batch_loss(params, hparams: dict, batch, graph, data: TrainData, key, *,
               spec: Spec):
  """Algorithm 1 for one mini-batch: sample, select, score, loss.

  Args:
    params: layer-0 embeddings.
    hparams: this replica's beta, alpha, l2 (scalars).
    batch: (users, positives, mask), each (B,).
    graph: the normalised adjacency (LightGCN) or None (MF).
    data: training data with the exclusion sets.
    key: PRNG key of this step.
    spec: static settings.

  Returns:
    (loss, aux) with aux = {"fn_hits": chosen negatives in the FN set}.
  """
  model = spec.model
  users, positives, mask = batch
  pool_key, alpha_key = jax.random.split(key)
  user_layers, item_layers = model.layers(params, graph)
  user_final, item_final = user_layers.mean(0), item_layers.mean(0)
  pool_size = 1 if spec.sampler == "rns" else spec.pool_size
  draw = functools.partial(samplers.candidate_pool, exclude=data.exclude,
                           num_items=model.num_items, pool_size=pool_size)
  pools = jax.vmap(draw)(jax.random.split(pool_key, users.shape[0]), users)
  e_user, e_pos = user_final[users], item_final[positives]
  pos_scores = jnp.sum(e_user * e_pos, -1)

  if spec.sampler == "mixgcf":
    alpha = jax.random.uniform(alpha_key, (users.shape[0], model.num_hops))
    e_neg, neg_layer0, chosen = jax.vmap(samplers.mixgcf_negative)(
        user_layers=user_layers[:, users].swapaxes(0, 1),
        positive_layers=item_layers[:, positives].swapaxes(0, 1),
        candidate_layers=item_layers[:, pools].swapaxes(0, 1), alpha=alpha)
    negatives = jnp.take_along_axis(pools, chosen, axis=1)  # (B, hops)
    loss = losses.bpr(pos_scores=pos_scores, neg_scores=jnp.sum(e_user * e_neg, -1),
                      mask=mask)
  else:
    hardest = jax.vmap(samplers.hardest)(jax.lax.stop_gradient(e_user),
                                         jax.lax.stop_gradient(item_final[pools]))
    negative = jnp.take_along_axis(pools, hardest[:, None], axis=1)[:, 0]
    negatives = negative[:, None]
    neg_layer0 = params["item"][negative]
    e_neg = item_final[negative]
    if spec.sampler == "mix":
      e_mixed = samplers.positive_mix(positive=e_pos, negative=e_neg,
                                      alpha=hparams["alpha"])
      loss = losses.bpr(pos_scores=pos_scores,
                        neg_scores=jnp.sum(e_user * e_mixed, -1), mask=mask)
    elif spec.sampler == "pdns":
      loss = losses.soft_bpr(pos_scores=pos_scores,
                             neg_scores=jnp.sum(e_user * e_neg, -1),
                             beta=hparams["beta"], mask=mask)
    else:  # rns, dns
      loss = losses.bpr(pos_scores=pos_scores, neg_scores=jnp.sum(e_user * e_neg, -1),
                        mask=mask)
  reg = losses.l2(embeddings=[params["user"][users], params["item"][positives],
                              neg_layer0], mask=mask)
  if spec.has_fn:
    in_fn = jax.vmap(jax.vmap(samplers.contains, (None, None, 0)), (None, 0, 0))(
        data.false_negatives, users, negatives)
    fn_hits = jnp.sum(in_fn.mean(axis=1) * mask)
  else:
    fn_hits = jnp.zeros(())
  return loss + hparams["l2"] * reg, {"fn_hits": fn_hits}


def train_epoch(state: TrainState, hparams: dict, data: TrainData, graph, *,
                spec: Spec):
  """One pass over the shuffled training pairs, as one program.

  The permutation depends on (seed, epoch) and each step's sampling key on
  (seed, step), so a resumed run repeats an uninterrupted one exactly.

  Returns:
    (new state, {"loss", "fn_hits", "count", "first_bad_step"}); first_bad_step
    is the global step of the first non-finite loss, or -1.
  """
  shuffle_root, step_root = jax.random.split(state.key)
  n, size = spec.num_train, spec.batch_size
  num_batches = -(-n // size)
  order = jax.random.permutation(jax.random.fold_in(shuffle_root, state.epoch), n)
  order = jnp.concatenate([order, jnp.zeros(num_batches * size - n, order.dtype)])
  mask = (jnp.arange(num_batches * size) < n).astype(jnp.float32)
  batches = (data.users[order].reshape(num_batches, size),
             data.items[order].reshape(num_batches, size),
             mask.reshape(num_batches, size))
  optimizer = make_optimizer(0.0)  # the real rate is read from opt_state

  def step(carry, batch):
    params, opt_state, step_index = carry
    key = jax.random.fold_in(step_root, step_index)
    (loss, aux), grads = jax.value_and_grad(batch_loss, has_aux=True)(
        params, hparams, batch, graph, data, key, spec=spec)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state, step_index + 1), (loss, aux["fn_hits"], jnp.sum(batch[2]))

  (params, opt_state, step_index), (loss, fn_hits, count) = jax.lax.scan(
      step, (state.params, state.opt_state, state.step), batches)
  finite = jnp.isfinite(loss)
  params_finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(p))
                                     for p in jax.tree_util.tree_leaves(params)]))
  first_bad = jnp.where(jnp.all(finite),
                        jnp.where(params_finite, -1, step_index - 1),
                        state.step + jnp.argmin(finite))
  metrics = {"loss": jnp.sum(loss * count) / jnp.sum(count),
             "fn_hits": jnp.sum(fn_hits), "count": jnp.sum(count),
             "first_bad_step": first_bad}
  return state.replace(params=params, opt_state=opt_state, step=step_index,
                       epoch=state.epoch + 1), metrics


def eval_params(params, graph, valid: eval_lib.EvalSet, test: eval_lib.EvalSet, *,
                model: models.Model, topk: tuple[int, ...]) -> dict:
  """Valid and test metrics of one replica (embeddings computed once)."""
  users, items = model.embed(params, graph)
  out = {}
  for prefix, data in (("valid", valid), ("test", test)):
    for name, value in eval_lib.evaluate(users, items, data, topk).items():
      out[f"{prefix}/{name}"] = value
  return out


# ----------------------------------------------------------------------------
# Host side: building the run, the loop, checkpoints and files.


def _json_dump(path: pathlib.Path, obj) -> None:
  data_lib.atomic_write(path, lambda f: f.write(
      (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


class _Checkpoints:
  """Latest and best states (orbax), with the loop's bookkeeping as JSON."""

  def __init__(self, workdir: pathlib.Path):
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                           enable_async_checkpointing=False)
    self.latest = ocp.CheckpointManager(workdir / "checkpoints" / "latest", options=options)
    self.best = ocp.CheckpointManager(workdir / "checkpoints" / "best", options=options)

  @staticmethod
  def _shapes(state) -> list:
    return [list(x.shape) + [str(x.dtype)] for x in jax.tree_util.tree_leaves(state)]

  def _save(self, manager, epoch, state, meta):
    meta = dict(meta, shapes=self._shapes(state))
    if epoch in manager.all_steps():
      # A run killed between saving "best" and "latest" redoes this epoch on
      # resume and reaches the same state: replace the older copy.
      manager.delete(epoch)
    manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    manager.wait_until_finished()

  def save(self, epoch: int, state, meta: dict, best_state=None) -> None:
    if best_state is not None:
      self._save(self.best, epoch, best_state, meta)
    self._save(self.latest, epoch, state, meta)

  def restore(self, like):
    """(state, best_state, meta) from the latest checkpoint, or None.

    Raises:
      ValueError: the checkpoint holds arrays of other shapes than `like`
        (checked from the JSON part first, so orbax is never asked to
        restore into mismatched arrays).
    """
    step = self.latest.latest_step()
    if step is None:
      return None
    meta = self.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if meta.get("shapes") != self._shapes(like):
      raise ValueError("its array shapes differ from this config's")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    args = lambda: ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                      meta=ocp.args.JsonRestore())
    restored = self.latest.restore(step, args=args())
    best_step = self.best.latest_step()
    best_state = (self.best.restore(best_step, args=args()).state
                  if best_step is not None else restored.state)
    return restored.state, best_state, restored.meta


@dataclasses.dataclass
class _Tracker:
  """Model selection for one replica: best valid Recall@K and patience."""

  best_epoch: int = -1
  best_valid: float = -math.inf
  best_metrics: dict = dataclasses.field(default_factory=dict)
  bad_evals: int = 0
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


class _Reveals:
  """The false-negative simulation: which FN pairs the sampler may not draw."""

  def __init__(self, config, fn_pairs: np.ndarray):
    rng = np.random.default_rng(config.data_seed + 1)
    self.order = fn_pairs[rng.permutation(len(fn_pairs))] if len(fn_pairs) else fn_pairs
    self.stages = int(round(config.reveal_fraction / REVEAL_STEP))
    self.start = int(config.reveal_start)
    self.every = int(config.reveal_every)

  def stage_at(self, epoch: int) -> int:
    if self.stages == 0 or self.start < 0 or epoch < self.start:
      return 0
    return min(self.stages, 1 + (epoch - self.start) // self.every)

  def revealed(self, stage: int) -> np.ndarray:
    return self.order[:int(round(stage * REVEAL_STEP * len(self.order)))]


def _stack(trees):
  return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _select(pick: jax.Array, new, old):
  """Per replica, new where pick else old."""
  def choose(a, b):
    return jnp.where(pick.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
  return jax.tree_util.tree_map(choose, new, old)


def _truncate_jsonl(path: pathlib.Path, last_epoch: int) -> None:
  """Drops lines of epochs after a resumed checkpoint (they will be redone)."""
  if not path.exists():
    return
  keep = [line for line in path.read_text().splitlines()
          if line.strip() and json.loads(line)["epoch"] <= last_epoch]
  data_lib.atomic_write(path, lambda f: f.write("".join(l + "\n" for l in keep).encode()))


def _summary_of(tracker: _Tracker, select_key: str) -> dict:
  out = {"best_epoch": tracker.best_epoch, select_key: tracker.best_valid}
  out.update({k: v for k, v in tracker.best_metrics.items() if k.startswith("test/")})
  return out


@dataclasses.dataclass
class Run:
  """Everything built once for a run: data on device, the model, jitted functions."""

  config: Any
  split: data_lib.Split
  settings: list[dict]
  spec: Spec
  graph: Any
  hparams: dict
  valid_set: eval_lib.EvalSet
  test_set: eval_lib.EvalSet
  reveals: _Reveals
  topk: tuple[int, ...]
  epoch_fn: Any  # (state, hparams, data, graph) -> (state, metrics); state donated
  eval_fn: Any  # (params, graph, valid_set, test_set) -> {"valid/recall@50": (R,), ...}

  def init_state(self) -> TrainState:
    """The initial state of every replica (leading replica axis)."""
    init = jax.vmap(functools.partial(init_state, self.spec.model))
    return init(jnp.asarray([s["seed"] for s in self.settings], jnp.uint32),
                jnp.asarray([s["learning_rate"] for s in self.settings], jnp.float32))

  @functools.cached_property
  def _stage_independent(self) -> TrainData:
    """The parts of TrainData no reveal changes, built once (exclude: stage 0)."""
    split = self.split
    return TrainData(users=jnp.asarray(split.train[:, 0]),
                     items=jnp.asarray(split.train[:, 1]),
                     exclude=self._exclusion(0),
                     false_negatives=samplers.sorted_sets(split.fn, split.num_users))

  def _exclusion(self, stage: int) -> samplers.SortedSets:
    split, reveals = self.split, self.reveals
    excluded = np.concatenate([split.train, reveals.revealed(stage)])
    everything = np.concatenate([split.train, reveals.revealed(reveals.stages)])
    return samplers.sorted_sets(excluded, split.num_users, like=everything)

  def train_data(self, stage: int = 0) -> TrainData:
    """Training arrays with `stage` 20% subsets of the FN set excluded from sampling."""
    data = self._stage_independent
    return data if stage == 0 else data.replace(exclude=self._exclusion(stage))


def build_run(config, split: data_lib.Split | None = None) -> Run:
  """Checks the config, loads (or takes) the split and builds the run's pieces.

  Args:
    config: a config as in configs/default.py.
    split: use this split instead of loading config.dataset (benchmarks).
  """
  check_config(config)
  if split is None:
    split = data_lib.load_split(config)
  check_config_against_data(config, split)
  logging.info("data: %s, %d users, %d items, from %s", split.name, split.num_users,
               split.num_items, split.source or "(source not recorded)")
  logging.info("split: %s; counts %s", split.description, split.counts())
  paper = data_stats.PAPER_TABLE1.get(split.name)
  if paper is not None:
    logging.info("paper's Table 1 for %s: %d users, %d items, %d interactions (here: %d)",
                 split.name, paper.users, paper.items, paper.interactions,
                 sum(split.counts().values()))
  settings = replica_settings(config)
  if config.reveal_fraction > 0 and config.reveal_start < 0 and len(settings) > 1:
    raise ConfigError("config.reveal_start: set an explicit epoch when training "
                      "several replicas (the automatic start follows one run's peak)")
  topk = tuple(int(k) for k in config.topk)
  model = models.Model(kind=config.model, num_users=split.num_users,
                       num_items=split.num_items, embed_dim=config.embed_dim,
                       num_layers=config.num_layers, propagation=config.propagation)
  graph = (graph_lib.device_graph(graph_lib.normalized_adjacency(
      split.train, split.num_users, split.num_items)) if config.model == "lightgcn" else None)
  spec = Spec(model=model, sampler=config.sampler, pool_size=config.pool_size,
              batch_size=config.batch_size, num_train=len(split.train),
              has_fn=len(split.fn) > 0)
  eval_batch = config.eval_batch_size
  return Run(
      config=config, split=split, settings=settings, spec=spec, graph=graph,
      hparams={name: jnp.asarray([s[name] for s in settings], jnp.float32)
               for name in ("beta", "alpha", "l2")},
      valid_set=eval_lib.eval_set(targets=split.valid, excluded=[split.train],
                                  num_users=split.num_users, batch_size=eval_batch),
      test_set=eval_lib.eval_set(targets=split.test, excluded=[split.train, split.valid],
                                 num_users=split.num_users, batch_size=eval_batch),
      reveals=_Reveals(config, split.fn), topk=topk,
      epoch_fn=jax.jit(jax.vmap(functools.partial(train_epoch, spec=spec),
                                in_axes=(0, 0, None, None)), donate_argnums=0),
      eval_fn=jax.jit(jax.vmap(functools.partial(eval_params, model=model, topk=topk),
                               in_axes=(0, None, None, None))))


def train_and_evaluate(config, workdir: str | pathlib.Path) -> dict:
  """Trains as `config` says, writing outputs into `workdir`; resumes if it can.

  Writes config.json, metrics.jsonl (one line per evaluation and replica),
  summary.json, orbax checkpoints (checkpoints/latest, checkpoints/best) and a
  TensorBoard event file.

  Returns:
    The summary: best_epoch, valid/recall@K, test metrics at the best epoch,
    train_seconds, seconds_per_epoch (and per-replica summaries if several).
  """
  workdir = pathlib.Path(workdir).resolve()  # orbax wants absolute paths
  run = build_run(config)
  workdir.mkdir(parents=True, exist_ok=True)
  _json_dump(workdir / "config.json", json.loads(config.to_json()))
  settings, spec, reveals, graph = run.settings, run.spec, run.reveals, run.graph
  select_key = f"valid/recall@{max(run.topk)}"
  state = run.init_state()
  best_state = jax.tree_util.tree_map(jnp.copy, state)  # state is donated

  trackers = [_Tracker() for _ in settings]
  meta = {"epoch": 0, "train_seconds": 0.0, "epoch_seconds": [],
          "reveal_start": reveals.start}
  checkpoints = _Checkpoints(workdir)
  try:
    restored = checkpoints.restore(state)
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(
        f"workdir {workdir} holds checkpoints of a differently shaped run ({e}); "
        "use a new --workdir, or the config that wrote them") from e
  if restored is not None:
    state, best_state, meta = restored
    trackers = [_Tracker(**t) for t in meta["trackers"]]
    reveals.start = meta["reveal_start"]
    logging.info("resuming %s from epoch %d", workdir, meta["epoch"])
  metrics_path = workdir / "metrics.jsonl"
  _truncate_jsonl(metrics_path, meta["epoch"])
  writer = _tensorboard(config, workdir)

  epoch = meta["epoch"]
  stage = reveals.stage_at(epoch)
  data = run.train_data(stage)
  evals_since_save = 0
  bar = tqdm.tqdm(total=config.num_epochs, initial=epoch, disable=not config.progress,
                  desc=f"{config.dataset}/{config.model}/{config.sampler}", unit="epoch")
  loop_start, window_start = time.time(), time.time()
  window = {"loss": 0.0, "fn_hits": 0.0, "count": 0.0}
  while epoch < config.num_epochs and not all(t.stopped for t in trackers):
    epoch_start = time.time()
    state, out = run.epoch_fn(state, run.hparams, data, graph)
    out = jax.device_get(out)
    meta["epoch_seconds"].append(time.time() - epoch_start)
    epoch += 1
    bad = [r for r, s in enumerate(out["first_bad_step"]) if s >= 0]
    if bad:
      raise NonFiniteLossError(
          f"non-finite loss in epoch {epoch}, step {int(out['first_bad_step'][bad[0]])} "
          f"(replica {bad[0]}: {settings[bad[0]]}); the last good checkpoint is kept "
          f"in {workdir / 'checkpoints'}. Try a smaller learning_rate.")
    for name in window:
      window[name] = window[name] + out[name] if name != "loss" else out[name]
    bar.update(1)
    if epoch % config.eval_every and epoch != config.num_epochs:
      continue

    results = jax.device_get(run.eval_fn(state.params, graph, run.valid_set, run.test_set))
    improved = np.zeros(len(settings), bool)
    seconds = time.time() - window_start
    lines = []
    for r, tracker in enumerate(trackers):
      metrics = {name: float(v[r]) for name, v in results.items()}
      improved[r] = tracker.update(epoch, metrics, select_key, config.patience)
      line = {"epoch": epoch, "loss": float(window["loss"][r]), "seconds": seconds, **metrics}
      if spec.has_fn:
        line["fn_hit_rate"] = float(window["fn_hits"][r] / max(window["count"][r], 1.0))
        line["revealed"] = stage * REVEAL_STEP if reveals.stages else 0.0
      if len(settings) > 1:
        line["replica"] = r
      lines.append(line)
      _log_scalars(writer, line, r if len(settings) > 1 else None)
    with open(metrics_path, "a") as f:
      f.write("".join(json.dumps(l) + "\n" for l in lines))
    bar.set_postfix(loss=f"{lines[0]['loss']:.4f}",
                    **{select_key: f"{lines[0][select_key]:.4f}"})
    for line in lines:
      _report(bar if config.progress else None, line)
    window = {"loss": 0.0, "fn_hits": 0.0, "count": 0.0}
    window_start = time.time()

    if improved.any():
      best_state = _select(jnp.asarray(improved), state, best_state)
    if (reveals.stages and reveals.start < 0 and
        trackers[0].bad_evals >= 2):  # valid Recall has peaked: start revealing
      reveals.start = epoch
    new_stage = reveals.stage_at(epoch)
    if new_stage != stage:
      stage = new_stage
      data = run.train_data(stage)
      logging.info("epoch %d: revealed %.0f%% of the FN set to the sampler", epoch,
                   100 * stage * REVEAL_STEP)
    meta.update(epoch=epoch, trackers=[dataclasses.asdict(t) for t in trackers],
                reveal_start=reveals.start,
                train_seconds=meta["train_seconds"] + time.time() - loop_start)
    loop_start = time.time()
    evals_since_save += 1
    done = epoch >= config.num_epochs or all(t.stopped for t in trackers)
    if evals_since_save >= config.checkpoint_every or done or improved.any():
      checkpoints.save(epoch, state, meta, best_state if improved.any() else None)
      evals_since_save = 0
  bar.close()
  if writer is not None:
    writer.close()

  summaries = [_summary_of(t, select_key) for t in trackers]
  timing = {"train_seconds": meta["train_seconds"],
            "seconds_per_epoch": float(np.median(meta["epoch_seconds"]))
            if meta["epoch_seconds"] else 0.0,
            "epochs_run": epoch, "data": run.split.description}
  if len(settings) == 1:
    summary = {**summaries[0], **timing}
  else:
    summary = {"replicas": [{"hparams": s, **m} for s, m in zip(settings, summaries)],
               **timing}
  _json_dump(workdir / "summary.json", summary)
  logging.info("summary: %s", summary)
  return summary


def _report(bar, line: dict) -> None:
  """One readable line per evaluation, above the progress bar when there is one."""
  def group(prefix):
    return " ".join(f"{k[len(prefix):]} {v:.4f}" for k, v in sorted(line.items())
                    if k.startswith(prefix))
  text = (f"epoch {line['epoch']}: loss {line['loss']:.4f} | valid {group('valid/')} | "
          f"test {group('test/')}")
  if "fn_hit_rate" in line:
    text += f" | fn_hit_rate {line['fn_hit_rate']:.4f} revealed {line['revealed']:.1f}"
  if "replica" in line:
    text = f"replica {line['replica']} " + text
  if bar is not None:
    bar.write(text)
  else:
    logging.info("%s", text)


def _tensorboard(config, workdir: pathlib.Path):
  if not config.tensorboard:
    return None
  import tensorboardX  # pylint: disable=g-import-not-at-top
  return tensorboardX.SummaryWriter(str(workdir / "tensorboard"))


def _log_scalars(writer, line: dict, replica) -> None:
  if writer is None:
    return
  prefix = "" if replica is None else f"replica_{replica}/"
  for name, value in line.items():
    if name not in ("epoch", "replica"):
      writer.add_scalar(prefix + name.replace("@", "_at_"), value, line["epoch"])

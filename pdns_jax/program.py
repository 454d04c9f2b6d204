"""Everything one run compiles and holds: checked config, data on device, jitted functions.

`build_program(config)` checks every field before any compute, loads the
split, builds the graph, model and sampler, uploads the training and
evaluation arrays and wraps the epoch, the sampler refresh and the
evaluation in vmapped, jitted functions. The loop (`train.py`) and the
benchmark (`launch/benchmark.py`) both start here. A `Program` is built once
and never changed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from pdns_jax import config as config_lib
from pdns_jax import data as data_lib
from pdns_jax import evaluate as eval_lib
from pdns_jax import graph as graph_lib
from pdns_jax import losses
from pdns_jax import mesh as mesh_lib
from pdns_jax import models
from pdns_jax import samplers
from pdns_jax import simulation
from pdns_jax import step as step_lib
from pdns_jax.config import ConfigError
from pdns_jax.data import reference
from pdns_jax.samplers import base as samplers_base
from pdns_jax.samplers import pools


def check_config(config) -> None:
  """Rejects unknown names and impossible values before any compute."""
  def need(ok, field, why):
    if not ok:
      raise ConfigError(f"config.{field}: {why} (got {config[field]!r})")
  need(config.model in models.MODELS, "model", f"must be one of {models.MODELS}")
  need(config.sampler in samplers.REGISTRY, "sampler",
       f"must be one of {tuple(samplers.REGISTRY)}")
  samplers.REGISTRY[config.sampler].check(config)
  need(config.pretrain_epochs >= 0, "pretrain_epochs", "must be >= 0")
  if config.init_from:
    check_init_from(config)
  need(config.loss in ("auto",) + losses.LOSSES, "loss",
       f"must be 'auto' (the sampler's own) or one of {losses.LOSSES}")
  need(not (config.sampler == "pdns" and config.loss == "bpr"), "loss",
       "sampler 'pdns' is DNS with soft BPR; for DNS with BPR use sampler 'dns'")
  mesh_lib.make_mesh(config.mesh)  # a mesh the devices cannot form is an error now
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
  need(0 <= config.seed and config.seed + config.num_replicas <= 2 ** 32, "seed",
       "seeds seed .. seed + num_replicas - 1 must lie in [0, 2**32)")
  need(len(config.topk) >= 1 and all(int(k) >= 1 for k in config.topk), "topk",
       "must be a non-empty tuple of positive cut-offs")
  simulation.check_fraction(config.reveal_fraction)
  need(config.reveal_fraction == 0 or config.split == "fn", "reveal_fraction",
       "revealing false negatives needs config.split='fn'")
  need(config.reveal_every >= 1, "reveal_every", "must be >= 1")
  # Swept sampler knobs ("srns.alpha=0,1") pass their sampler's own checks.
  swept = {name.split(".")[0] for name, _ in config_lib.parse_axes(
      config.replica_sweep, what="config.replica_sweep") if "." in name}
  settings = config_lib.replica_settings(
      config, check=lambda c: [samplers.REGISTRY[block].check(c) for block in sorted(swept)])
  need(not (config.reveal_fraction > 0 and config.reveal_start < 0 and len(settings) > 1),
       "reveal_start", "set an explicit epoch when training several replicas (the "
       "automatic start follows one run's validation peak, and replicas share the "
       "training data)")


# Fields an init_from run must share with this one: the same data and split,
# the same table shapes.
INIT_FROM_SAME = ("dataset", "split", "data_seed", "valid_order", "embed_dim")


def check_init_from(config) -> None:
  """`config.init_from` names a finished run of the same data and sizes."""
  folder = pathlib.Path(config.init_from).expanduser()
  stored = folder / "config.json"
  if not stored.is_file() or not (folder / "checkpoints").is_dir():
    raise ConfigError(f"config.init_from: {folder} is not a training workdir with "
                      "checkpoints (config.json, checkpoints/); train it first")
  other = json.loads(stored.read_text())
  differ = [f"{f}: {other.get(f)!r} there, {config[f]!r} here" for f in INIT_FROM_SAME
            if other.get(f, "time" if f == "valid_order" else None) != config[f]]
  if differ:
    raise ConfigError(f"config.init_from: {folder} trained on other data or sizes "
                      f"({'; '.join(differ)})")


def initial_params(saved: dict, model: models.Model, replicas: int):
  """Another run's layer-0 embeddings, one copy per replica, padded as `model`.

  Args:
    saved: {"user": (its replicas, rows, F), "item": ...}, as
      `checkpoints.read_params` reads them.
    model: this run's model.
    replicas: this run's replica count. Its replica r starts replica r, or
      its replica 0 every replica where the counts differ.

  Raises:
    ConfigError: the tables have other shapes than this run's.
  """
  params = {}
  for name, rows in (("user", model.num_users), ("item", model.num_items)):
    table = saved[name][:, :rows]
    if table.shape[1:] != (rows, model.embed_dim):
      raise ConfigError(f"config.init_from: its {name} table has shape {table.shape[1:]}, "
                        f"this run's ({rows}, {model.embed_dim})")
    if table.shape[0] != replicas:
      table = np.repeat(table[:1], replicas, axis=0)
    params[name] = jnp.pad(jnp.asarray(table, jnp.float32),
                           ((0, 0), (0, -rows % model.row_multiple), (0, 0)))
  return params


def check_config_against_data(config, split: data_lib.Split) -> int:
  """Rejects settings the loaded data cannot serve.

  Returns:
    The batch size to train with: config.batch_size, clamped (with a warning)
    to the number of training pairs, since a larger batch only pads.
  """
  if max(config.topk) > split.num_items:
    raise ConfigError(f"config.topk: cut-off {max(config.topk)} is larger than the "
                      f"{split.num_items} items of {split.name}")
  if config.pool_size > split.num_items:
    raise ConfigError(f"config.pool_size: {config.pool_size} candidates per example for "
                      f"{split.num_items} items; candidates are drawn with replacement, so "
                      "a pool beyond the item count only costs time. Use at most "
                      f"{split.num_items}")
  if config.batch_size > len(split.train):
    logging.warning("config.batch_size %d is larger than the %d training pairs of %s; "
                    "training with batches of %d (one batch per epoch)", config.batch_size,
                    len(split.train), split.name, len(split.train))
    return len(split.train)
  return int(config.batch_size)


def eval_params(params, graph, valid: eval_lib.EvalSet, test: eval_lib.EvalSet, *,
                model: models.Model, topk: tuple[int, ...], item_chunk: int = 0,
                mesh=None) -> dict:
  """Valid and test metrics of one replica (embeddings computed once).

  With a mesh, each batch's users are split over the devices: a device ranks
  all items for its users (top-K over item chunks), and only the sums of the
  metrics cross devices.
  """
  users, items = model.embed(params, graph)
  out = {}
  for prefix, data in (("valid", valid), ("test", test)):
    per_user = mesh_lib.split_examples(mesh, (data.users, data.real, data.num_targets))
    data = data.replace(users=per_user[0], real=per_user[1], num_targets=per_user[2])
    for name, value in eval_lib.evaluate(users, items, data, topk,
                                            item_chunk=item_chunk).items():
      out[f"{prefix}/{name}"] = value
  return out


@dataclasses.dataclass(frozen=True)
class Program:
  """Everything built once for a run: data on device, the model, jitted functions."""

  config: Any
  split: data_lib.Split
  settings: list[dict]  # per replica: seed, beta, alpha, l2, learning_rate, swept knobs
  spec: step_lib.Spec
  graph: Any
  hparams: dict  # config.HPARAM_FIELDS per replica, each (replicas,)
  valid_set: eval_lib.EvalSet
  test_set: eval_lib.EvalSet
  reveals: simulation.RevealSchedule
  topk: tuple[int, ...]
  epoch_fn: Any  # (state, hparams, data, graph) -> (state, metrics); state donated
  pretrain_fn: Any  # the same with RNS and BPR (GAN samplers' pre-training), or None
  pretrain_epochs: int  # epochs trained by pretrain_fn first
  refresh_fn: Any  # (state, data, graph) -> state, or None when the sampler has none
  eval_fn: Any  # (params, graph, valid_set, test_set) -> {"valid/recall@50": (R,), ...}

  def init_state(self, saved_params: dict | None = None) -> step_lib.TrainState:
    """The initial state of every replica (leading replica axis), placed on the mesh.

    Args:
      saved_params: start from these layer-0 embeddings of an earlier run
        (`config.init_from`), with a fresh Adam state, instead of random ones.
    """
    init = jax.vmap(functools.partial(step_lib.init_state, self.spec, self.train_data()),
                    in_axes=(0, 0))
    state = init(jnp.asarray([s["seed"] for s in self.settings], jnp.uint32),
                 jnp.asarray([s["learning_rate"] for s in self.settings], jnp.float32))
    if saved_params is not None:
      params = initial_params(saved_params, self.spec.model, len(self.settings))
      optimizer = step_lib.make_optimizer(0.0)
      opt_state = jax.vmap(optimizer.init)(params)
      hyper = dict(opt_state.hyperparams, learning_rate=state.opt_state.hyperparams[
          "learning_rate"])
      state = state.replace(params=params, opt_state=opt_state._replace(hyperparams=hyper))
    if self.spec.mesh is not None:
      state = jax.device_put(state, mesh_lib.state_shardings(self.spec.mesh, state))
    return state

  def _tables(self, state, resize):
    """Applies resize(leaf, real rows) to the embedding tables and their Adam moments."""
    rows = {"user": self.spec.model.num_users, "item": self.spec.model.num_items}
    def visit(path, leaf):
      keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
      if keys and keys[0] in ("params", "opt_state") and keys[-1] in rows and leaf.ndim >= 2:
        return resize(leaf, rows[keys[-1]])
      return leaf
    return jax.tree_util.tree_map_with_path(visit, state)

  def to_saved(self, state):
    """The state as checkpoints hold it: tables without their mesh padding rows.

    So a run saved on N devices restores on M (the padding depends on N).
    """
    if self.spec.model.row_multiple == 1:
      return state
    return self._tables(state, lambda leaf, rows: leaf[:, :rows])

  def from_saved(self, saved):
    """`to_saved` undone: tables padded for this run's mesh and placed on it."""
    if self.spec.model.row_multiple == 1:
      return saved
    multiple = self.spec.model.row_multiple
    state = self._tables(saved, lambda leaf, rows: jnp.pad(
        leaf, [(0, 0), (0, -rows % multiple)] + [(0, 0)] * (leaf.ndim - 2)))
    return jax.device_put(state, mesh_lib.state_shardings(self.spec.mesh, state))

  @functools.cached_property
  def _stage_independent(self) -> samplers_base.TrainData:
    """The parts of TrainData no reveal changes, built once (exclude: stage 0)."""
    split, mesh = self.split, self.spec.mesh
    sets = mesh_lib.put_replicated(mesh, (self._exclusion(0),
                                          pools.sorted_sets(split.fn, split.num_users)))
    data = samplers_base.TrainData(  # the pairs split by rows over a mesh
        users=mesh_lib.put_rows(mesh, np.ascontiguousarray(split.train[:, 0])),
        items=mesh_lib.put_rows(mesh, np.ascontiguousarray(split.train[:, 1])),
        exclude=sets[0], false_negatives=sets[1], num_pairs=len(split.train))
    if mesh is not None:
      held = sum(shard.data.shape[0] for shard in data.users.addressable_shards)
      logging.info("training pairs: %d, split by rows over %d devices; this process "
                   "holds %d rows", len(split.train), mesh.size, held)
    return data

  def _exclusion(self, stage: int) -> pools.SortedSets:
    split, reveals = self.split, self.reveals
    excluded = np.concatenate([split.train, reveals.revealed(stage)])
    everything = np.concatenate([split.train, reveals.revealed(reveals.stages)])
    return pools.sorted_sets(excluded, split.num_users, like=everything)

  def train_data(self, stage: int = 0) -> samplers_base.TrainData:
    """Training arrays with `stage` 20% subsets of the FN set excluded from sampling."""
    data = self._stage_independent
    return data if stage == 0 else data.replace(
        exclude=mesh_lib.put_replicated(self.spec.mesh, self._exclusion(stage)))


def build_program(config, split: data_lib.Split | None = None) -> Program:
  """Checks the config, loads (or takes) the split and builds the run's pieces.

  Args:
    config: a config as in configs/default.py.
    split: use this split instead of loading config.dataset (benchmarks).
  """
  check_config(config)
  if split is None:
    split = data_lib.load_split(config)
  batch_size = check_config_against_data(config, split)
  for line in reference.describe_split(split):
    logging.info("%s", line)
  settings = config_lib.replica_settings(config)
  topk = tuple(int(k) for k in config.topk)
  mesh = mesh_lib.make_mesh(config.mesh)
  model = models.Model(kind=config.model, num_users=split.num_users,
                       num_items=split.num_items, embed_dim=config.embed_dim,
                       num_layers=config.num_layers, propagation=config.propagation,
                       row_multiple=mesh_lib.row_multiple(mesh))
  graph = None
  if config.model == "lightgcn":
    adjacency = graph_lib.normalized_adjacency(split.train, split.num_users, split.num_items)
    graph = (graph_lib.device_graph(adjacency, method=config.propagation) if mesh is None else
             mesh_lib.graph_blocks(mesh, adjacency, split.num_users, split.num_items))
  sampler = samplers.build(config, split)
  spec = step_lib.Spec(model=model, sampler=sampler, loss=samplers.loss_name(config),
                       batch_size=batch_size, num_train=len(split.train),
                       has_fn=len(split.fn) > 0, mesh=mesh)
  if mesh is not None:
    logging.info("mesh: %d devices along %r (%s)", mesh.size, mesh_lib.AXIS,
                 jax.default_backend())
  logging.info("sampler %s (%s), loss %s", config.sampler,
               samplers.REGISTRY[config.sampler].about, spec.loss)
  eval_batch = config.eval_batch_size
  compile_epoch = lambda spec: jax.jit(jax.vmap(
      functools.partial(step_lib.train_epoch, spec=spec), in_axes=(0, 0, None, None)),
                                    donate_argnums=0)
  # The GAN samplers start from RNS training (PAPER.md 8.4): same state, the
  # sampler's own state passed through untouched.
  pretrain = samplers.REGISTRY[config.sampler].pretrain and config.pretrain_epochs > 0
  pretrain_spec = dataclasses.replace(spec, sampler=samplers.REGISTRY["rns"].build(config, split),
                                      loss="bpr")
  # Per replica float settings, each (replicas,): beta, alpha, l2 and the
  # samplers' knobs (config.HPARAM_FIELDS), swept or as configured.
  hparams = {name: jnp.asarray([config_lib.replica_value(config, s, name) for s in settings],
                               jnp.float32) for name in config_lib.HPARAM_FIELDS}
  refresh_fn = None
  if sampler.has_refresh:
    refresh = jax.jit(jax.vmap(
        lambda state, hp, data, graph: step_lib.refresh_sampler(state, data, graph, spec=spec,
                                                                hparams=hp),
        in_axes=(0, 0, None, None)), donate_argnums=0)
    refresh_fn = lambda state, data, graph: refresh(state, hparams, data, graph)
  return Program(
      config=config, split=split, settings=settings, spec=spec,
      graph=graph,
      hparams=hparams,
      valid_set=mesh_lib.put_replicated(mesh, eval_lib.eval_set(
          targets=split.valid, excluded=[split.train], num_users=split.num_users,
          batch_size=eval_batch)),
      test_set=mesh_lib.put_replicated(mesh, eval_lib.eval_set(
          targets=split.test, excluded=[split.train, split.valid],
          num_users=split.num_users, batch_size=eval_batch)),
      reveals=simulation.RevealSchedule.from_config(config, split.fn), topk=topk,
      epoch_fn=compile_epoch(spec),
      pretrain_fn=compile_epoch(pretrain_spec) if pretrain else None,
      pretrain_epochs=int(config.pretrain_epochs) if pretrain else 0,
      refresh_fn=refresh_fn,
      eval_fn=jax.jit(jax.vmap(functools.partial(eval_params, model=model, topk=topk,
                                 item_chunk=config.eval_item_chunk, mesh=mesh),
                               in_axes=(0, None, None, None))))

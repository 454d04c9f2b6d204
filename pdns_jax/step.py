"""The pure, jitted part of training: the train state, one mini-batch, one epoch.

One epoch is one compiled program (`train_epoch`): on-device shuffling, fixed
batches (the ragged tail padded and masked), the sampler's negatives,
propagation, loss and Adam update in a `lax.scan`. The state of several
replicas carries a leading axis and the epoch is vmapped over it (see
`program.build_program`); everything here is written for one replica.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from pdns_jax import losses
from pdns_jax import mesh as mesh_lib
from pdns_jax import models
from pdns_jax.samplers import base as samplers_base
from pdns_jax.samplers import pools


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree."""

  step: jax.Array
  epoch: jax.Array
  params: dict
  opt_state: Any
  sampler_state: Any  # the sampler's own carried state; () for stateless samplers
  key: jax.Array


@dataclasses.dataclass(frozen=True)
class Spec:
  """The static settings of a run's step: what changes here recompiles it."""

  model: models.Model
  sampler: samplers_base.Sampler
  loss: str  # one of losses.LOSSES
  batch_size: int
  num_train: int
  has_fn: bool
  mesh: Any = None  # a jax.sharding.Mesh to split batches over, or None (one device)


def make_optimizer(learning_rate) -> optax.GradientTransformation:
  # The learning rate lives in the optimiser state, so replicas can differ in it.
  return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def init_state(spec: Spec, data: samplers_base.TrainData, seed, learning_rate) -> TrainState:
  """One replica's initial state (vmap over seed and learning_rate for many)."""
  key = jax.random.PRNGKey(seed)
  params = spec.model.init(jax.random.fold_in(key, 0))
  return TrainState(step=jnp.zeros((), jnp.int32), epoch=jnp.zeros((), jnp.int32),
                    params=params, opt_state=make_optimizer(learning_rate).init(params),
                    sampler_state=spec.sampler.init(jax.random.fold_in(key, 1), data),
                    key=key)


def batch_loss(params, sampler_state, hparams: dict, batch: samplers_base.Batch, graph,
               data: samplers_base.TrainData, key, *, spec: Spec):
  """Algorithm 1 for one mini-batch: embed, sample negatives, loss.

  Args:
    params: layer-0 embeddings.
    sampler_state: the sampler's carried state.
    hparams: this replica's beta, alpha, l2 (scalars).
    batch: users, positives and mask, each (B,).
    graph: the normalised adjacency (LightGCN) or None (MF).
    data: training data with the exclusion sets.
    key: PRNG key of this step.
    spec: static settings.

  Returns:
    (loss, (aux, new sampler state)) with aux = {"fn_hits": chosen negatives
    in the FN set}.
  """
  embeddings = samplers_base.Embeddings.of(*spec.model.layers(params, graph))
  negatives, sampler_state = spec.sampler.negatives(sampler_state, key, batch, embeddings,
                                                    data, hparams)
  e_user = embeddings.user[batch.users]
  pos_scores = jnp.sum(e_user * embeddings.item[batch.positives], -1)
  neg_scores = jnp.einsum("bf,bkf->bk", e_user, negatives.embeddings)
  weights = jax.lax.stop_gradient(negatives.weights)
  loss = losses.ranking_loss(spec.loss, pos_scores=pos_scores, neg_scores=neg_scores,
                             beta=hparams["beta"], mask=batch.mask, weights=weights)
  loss = loss + negatives.extra_loss
  reg = losses.l2(embeddings=[params["user"][batch.users], params["item"][batch.positives],
                              negatives.layer0], weights=[None, None, weights],
                  mask=batch.mask)
  if spec.has_fn:
    in_fn = jax.vmap(jax.vmap(pools.contains, (None, None, 0)), (None, 0, 0))(
        data.false_negatives, batch.users, negatives.items)
    fn_hits = jnp.sum(in_fn.mean(axis=1) * batch.mask)
  else:
    fn_hits = jnp.zeros(())
  return loss + hparams["l2"] * reg, ({"fn_hits": fn_hits}, sampler_state)


def train_epoch(state: TrainState, hparams: dict, data: samplers_base.TrainData, graph, *,
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
  batches = samplers_base.Batch(users=data.users[order].reshape(num_batches, size),
                                positives=data.items[order].reshape(num_batches, size),
                                mask=mask.reshape(num_batches, size))
  batches = mesh_lib.split_examples(spec.mesh, batches)
  optimizer = make_optimizer(0.0)  # the real rate is read from opt_state

  def step(carry, batch):
    params, opt_state, sampler_state, step_index = carry
    key = jax.random.fold_in(step_root, step_index)
    (loss, (aux, sampler_state)), grads = jax.value_and_grad(batch_loss, has_aux=True)(
        params, sampler_state, hparams, batch, graph, data, key, spec=spec)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return ((params, opt_state, sampler_state, step_index + 1),
            (loss, aux["fn_hits"], jnp.sum(batch.mask)))

  (params, opt_state, sampler_state, step_index), (loss, fn_hits, count) = jax.lax.scan(
      step, (state.params, state.opt_state, state.sampler_state, state.step), batches)
  finite = jnp.isfinite(loss)
  params_finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(p))
                                     for p in jax.tree_util.tree_leaves(params)]))
  first_bad = jnp.where(jnp.all(finite),
                        jnp.where(params_finite, -1, step_index - 1),
                        state.step + jnp.argmin(finite))
  metrics = {"loss": jnp.sum(loss * count) / jnp.sum(count),
             "fn_hits": jnp.sum(fn_hits), "count": jnp.sum(count),
             "first_bad_step": first_bad}
  return state.replace(params=params, opt_state=opt_state, sampler_state=sampler_state,
                       step=step_index, epoch=state.epoch + 1), metrics


def refresh_sampler(state: TrainState, data: samplers_base.TrainData, graph, *,
                    spec: Spec, hparams: dict | None = None) -> TrainState:
  """The sampler's per-epoch refresh, run between epochs (its own jitted program).

  `hparams`: this replica's, as `train_epoch` gets them (e.g. gdns.decay).
  """
  embeddings = samplers_base.Embeddings.of(*spec.model.layers(state.params, graph))
  key = jax.random.fold_in(jax.random.fold_in(state.key, 2), state.epoch)
  return state.replace(sampler_state=spec.sampler.refresh(
      state.sampler_state, key, embeddings, data, state.epoch, hparams))

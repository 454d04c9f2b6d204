"""The compiled epoch against a hand-rolled loop, and a sampler's carried state.

Both use samplers written here against the plug-in interface
(`samplers.base.Sampler`), which is also what a new sampler is written against.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import checkpoints
from pdns_jax import models
from pdns_jax import program as program_lib
from pdns_jax import samplers
from pdns_jax import step as step_lib
from pdns_jax import train
from pdns_jax.samplers import base
from pdns_jax.samplers import pools


@dataclasses.dataclass(frozen=True)
class NextItem(base.Sampler):
  """The item after the positive: deterministic, so any batch order trains alike."""

  def negatives(self, state, key, batch, embeddings, data, hparams):
    negative = (batch.positives + 1) % self.num_items
    return base.single(negative, embeddings.item[negative],
                       embeddings.item_layers[0][negative]), state


@dataclasses.dataclass(frozen=True)
class Counting(base.Sampler):
  """Uniform negatives, counting its steps and per-epoch refreshes in its state."""

  has_refresh = True

  def init(self, key, data):
    return {"steps": jnp.zeros((), jnp.int32), "refreshes": jnp.zeros((), jnp.int32)}

  def negatives(self, state, key, batch, embeddings, data, hparams):
    negative = pools.batch_pools(key, batch.users, data.exclude, self.num_items, 1)[:, 0]
    return (base.single(negative, embeddings.item[negative],
                        embeddings.item_layers[0][negative]),
            dict(state, steps=state["steps"] + 1))

  def refresh(self, state, key, embeddings, data, epoch, hparams=None):
    return dict(state, refreshes=state["refreshes"] + 1)


def test_train_epoch_matches_a_hand_rolled_loop_of_batch_loss_and_adam():
  num_users, num_items = 5, 7
  pairs = np.array([(0, 1), (0, 3), (1, 2), (2, 0), (2, 6), (3, 4), (4, 5)])
  data = base.TrainData(users=jnp.asarray(pairs[:, 0]), items=jnp.asarray(pairs[:, 1]),
                        exclude=pools.sorted_sets(pairs, num_users),
                        false_negatives=pools.sorted_sets(np.zeros((0, 2)), num_users))
  model = models.Model(kind="mf", num_users=num_users, num_items=num_items, embed_dim=3)
  # One batch per epoch, with 3 padding rows that must not count.
  spec = step_lib.Spec(model=model, sampler=NextItem(num_items=num_items), loss="soft_bpr",
                       batch_size=len(pairs) + 3, num_train=len(pairs), has_fn=False)
  hparams = {"beta": jnp.float32(0.5), "alpha": jnp.float32(0), "l2": jnp.float32(0.1)}
  state = step_lib.init_state(spec, data, 0, 0.05)

  params = state.params
  adam = optax.adam(0.05)
  opt_state = adam.init(params)
  batch = base.Batch(users=data.users, positives=data.items, mask=jnp.ones(len(pairs)))
  for epoch in range(3):
    (loss, _), grads = jax.value_and_grad(step_lib.batch_loss, has_aux=True)(
        params, (), hparams, batch, None, data, jax.random.PRNGKey(0), spec=spec)
    updates, opt_state = adam.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    state, metrics = step_lib.train_epoch(state, hparams, data, None, spec=spec)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    assert int(metrics["count"]) == len(pairs) and int(metrics["first_bad_step"]) == -1
    for a, b in zip(jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(params)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert int(state.step) == 3 and int(state.epoch) == 3


@pytest.fixture
def counting_sampler(monkeypatch):
  entry = samplers.Entry(lambda c, s: Counting(num_items=s.num_items), "bpr", "test: counts steps")
  monkeypatch.setitem(samplers.REGISTRY, "counting", entry)


def _config(**overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.update(dict(tensorboard=False, sampler="counting", model="mf", batch_size=512,
                num_replicas=2, patience=100), **overrides)
  return c.lock()


def _sampler_state(config, workdir):
  program = program_lib.build_program(config)
  state, _, _ = checkpoints.Checkpoints(workdir).restore(program.init_state())
  steps_per_epoch = -(-program.spec.num_train // program.spec.batch_size)
  return jax.device_get(state.sampler_state), steps_per_epoch


def test_sampler_state_is_carried_per_replica_and_restored_on_resume(tmp_path,
                                                                       counting_sampler):
  train.train_and_evaluate(_config(num_epochs=2), tmp_path)
  state, steps_per_epoch = _sampler_state(_config(num_epochs=2), tmp_path)
  assert steps_per_epoch > 1
  np.testing.assert_array_equal(state["steps"], [2 * steps_per_epoch] * 2)
  np.testing.assert_array_equal(state["refreshes"], [2, 2])
  train.train_and_evaluate(_config(num_epochs=4), tmp_path)  # resumes at epoch 2
  state, _ = _sampler_state(_config(num_epochs=4), tmp_path)
  np.testing.assert_array_equal(state["steps"], [4 * steps_per_epoch] * 2)
  np.testing.assert_array_equal(state["refreshes"], [4, 4])

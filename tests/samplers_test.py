"""Samplers: exact exclusion, uniformity, membership, hardest pick, MixGCF, the registry."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default as default_config
from pdns_jax import models
from pdns_jax import samplers
from pdns_jax.samplers import base
from pdns_jax.samplers import dns
from pdns_jax.samplers import mixgcf
from pdns_jax.samplers import pools


def _sets(pairs, num_users):
  return pools.sorted_sets(np.asarray(pairs), num_users)


def test_candidates_never_hit_excluded_items_and_cover_the_rest():
  num_items = 12
  excluded = {0: [0, 1, 2, 7, 11], 1: [5], 2: list(range(1, 12))}  # user 2 keeps item 0 only
  pairs = [(u, i) for u, items in excluded.items() for i in items]
  sets = _sets(pairs, 3)
  for user, items in excluded.items():
    draw = jax.jit(lambda k, u: pools.candidate_pool(k, u, sets, num_items, 4000))
    pool = np.asarray(draw(jax.random.PRNGKey(user), jnp.int32(user)))
    allowed = sorted(set(range(num_items)) - set(items))
    assert set(pool.tolist()) == set(allowed), user
    # Uniform over the allowed items: each frequency within 5 sigma of 1/n.
    freq = np.bincount(pool, minlength=num_items)[allowed] / len(pool)
    p = 1.0 / len(allowed)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / len(pool)) + 1e-9)


def test_candidates_for_a_user_without_positives_cover_all_items():
  sets = _sets([(0, 3)], 2)
  pool = pools.candidate_pool(jax.random.PRNGKey(0), jnp.int32(1), sets, 5, 2000)
  assert set(np.asarray(pool).tolist()) == set(range(5))


def test_random_users_against_rejection_sampling_reference():
  rng = np.random.default_rng(0)
  num_users, num_items = 40, 30
  pairs = [(u, i) for u in range(num_users)
           for i in rng.choice(num_items, rng.integers(0, 29), replace=False)]
  sets = _sets(pairs, num_users)
  users = jnp.arange(num_users)
  keys = jax.random.split(jax.random.PRNGKey(1), num_users)
  drawn = jax.vmap(lambda k, u: pools.candidate_pool(k, u, sets, num_items, 64))(keys, users)
  positives = {(u, i) for u, i in pairs}
  for u, row in enumerate(np.asarray(drawn)):
    assert all((u, int(i)) not in positives for i in row)
    assert row.min() >= 0 and row.max() < num_items


def test_contains():
  sets = _sets([(0, 1), (0, 4), (0, 9), (2, 0)], 3)
  check = jax.vmap(lambda u, i: pools.contains(sets, u, i))
  users = jnp.array([0, 0, 0, 0, 1, 2, 2])
  items = jnp.array([1, 4, 9, 5, 1, 0, 1])
  np.testing.assert_array_equal(check(users, items), [1, 1, 1, 0, 0, 1, 0])


def test_hardest_picks_the_highest_score():
  user = jnp.array([1.0, -1.0])
  candidates = jnp.array([[0.0, 0.0], [2.0, -1.0], [1.0, 1.0], [-3.0, 0.0]])
  assert int(dns.hardest(user, candidates)) == 1


def test_positive_mix_is_eq4():
  out = dns.positive_mix(positive=jnp.array([1.0, 0.0]),
                              negative=jnp.array([0.0, 2.0]), alpha=0.25)
  np.testing.assert_allclose(out, [0.25, 1.5])


def test_mixgcf_mixes_per_layer_and_picks_per_layer():
  # Two layers, two candidates, alpha 0 (pure candidates): layer 0 prefers
  # candidate 1, layer 1 prefers candidate 0.
  user = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  positive = jnp.zeros((2, 2))
  candidates = jnp.array([[[0.0, 5.0], [3.0, 0.0]], [[0.0, 4.0], [9.0, 0.0]]])
  pooled, layer0, chosen = mixgcf.mixgcf_negative(
      user_layers=user, positive_layers=positive, candidate_layers=candidates,
      alpha=jnp.zeros(2))
  np.testing.assert_array_equal(chosen, [1, 0])
  np.testing.assert_allclose(layer0, [3.0, 0.0])
  np.testing.assert_allclose(pooled, [1.5, 2.0])
  # alpha 1 gives the positive itself on every layer.
  pooled, _, _ = mixgcf.mixgcf_negative(
      user_layers=user, positive_layers=jnp.ones((2, 2)), candidate_layers=candidates,
      alpha=jnp.ones(2))
  np.testing.assert_allclose(pooled, [1.0, 1.0])


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257])
def test_search_steps_cover_large_sets(size):
  pairs = [(0, 2 * i) for i in range(size)]
  sets = _sets(pairs, 1)
  num_items = 2 * size  # the odd items are the only negatives
  pool = np.asarray(pools.candidate_pool(jax.random.PRNGKey(size), jnp.int32(0), sets,
                                            num_items, 3000))
  assert np.all(pool % 2 == 1) and pool.max() < num_items
  # 3000 draws over `size` <= 257 negatives miss one with probability < 0.3%;
  # the key is fixed, so this is deterministic.
  assert len(set(pool.tolist())) == size


def test_padded_subsets_share_shapes_and_sample_the_same():
  full = np.array([(0, 1), (0, 2), (0, 5), (1, 0), (1, 3)])
  subset = full[[0, 3]]
  plain = _sets(subset, 2)
  padded = pools.sorted_sets(subset, 2, like=full)
  whole = _sets(full, 2)
  assert padded.items.shape == whole.items.shape
  assert padded.search_steps == whole.search_steps
  draw = lambda sets: pools.candidate_pool(jax.random.PRNGKey(0), jnp.int32(0), sets, 6, 500)
  np.testing.assert_array_equal(draw(plain), draw(padded))


def _registry_problem(num_users=8, num_items=20, seed=0):
  rng = np.random.default_rng(seed)
  pairs = np.array([(u, i) for u in range(num_users)
                    for i in rng.choice(num_items, rng.integers(1, num_items - 2),
                                        replace=False)])
  data = base.TrainData(users=jnp.asarray(pairs[:, 0]), items=jnp.asarray(pairs[:, 1]),
                        exclude=pools.sorted_sets(pairs, num_users),
                        false_negatives=pools.sorted_sets(np.zeros((0, 2)), num_users))
  model = models.Model(kind="lightgcn", num_users=num_users, num_items=num_items,
                       embed_dim=4, num_layers=2)
  params = model.init(jax.random.PRNGKey(seed))
  layers = jax.tree_util.tree_map(  # stand-in propagated layers: any values will do
      lambda x: jnp.stack([x, 2 * x, -x]), (params["user"], params["item"]))
  return pairs, data, base.Embeddings.of(*layers)


class _Config(dict):
  __getattr__ = dict.__getitem__


def _Split(num_items, train=None, num_users=None):  # pylint: disable=invalid-name
  """The host-side facts a sampler is built from (a stand-in for data.Split)."""
  return types.SimpleNamespace(num_items=num_items, train=train, num_users=num_users)


@pytest.mark.parametrize("name", samplers.SAMPLERS)
def test_every_registered_sampler_returns_only_allowed_items(name):
  pairs, data, embeddings = _registry_problem()
  config = default_config.get_config()
  config.unlock()
  config.update(sampler=name, pool_size=6, alpha=0.5, beta=0.2)
  sampler = samplers.build(config, _Split(20, pairs, num_users=8))
  state = sampler.init(jax.random.PRNGKey(0), data)
  positives = {(int(u), int(i)) for u, i in pairs}
  batch = base.Batch(users=jnp.asarray(pairs[:, 0]), positives=jnp.asarray(pairs[:, 1]),
                     mask=jnp.ones(len(pairs)))
  hparams = {"alpha": jnp.float32(0.5), "beta": jnp.float32(0.2), "l2": jnp.float32(0)}
  for step in range(5):
    negatives, state = sampler.negatives(state, jax.random.PRNGKey(step), batch,
                                         embeddings, data, hparams)
    items = np.asarray(negatives.items)
    assert items.shape[0] == len(pairs)
    assert negatives.embeddings.shape[:2] == negatives.weights.shape
    assert negatives.layer0.shape == negatives.embeddings.shape
    np.testing.assert_allclose(np.asarray(negatives.weights).sum(1), 1.0, rtol=1e-6)
    for u, row in zip(pairs[:, 0], items):
      assert not any((int(u), int(i)) in positives for i in row), (name, u, row)


def test_registry_losses_and_the_pdns_preset():
  config = _Config(sampler="pdns", pool_size=4, loss="auto")
  assert samplers.loss_name(config) == "soft_bpr"
  assert samplers.build(config, _Split(10)) == samplers.build(_Config(config, sampler="dns"),
                                                              _Split(10))
  assert samplers.loss_name(_Config(config, sampler="dns")) == "bpr"
  assert samplers.loss_name(_Config(config, sampler="dns", loss="soft_bpr")) == "soft_bpr"


def test_dns_picks_the_highest_scoring_candidate_of_its_pool():
  pairs, data, embeddings = _registry_problem(seed=3)
  sampler = dns.Hardest(num_items=20, pool_size=5)
  batch = base.Batch(users=jnp.asarray(pairs[:, 0]), positives=jnp.asarray(pairs[:, 1]),
                     mask=jnp.ones(len(pairs)))
  key = jax.random.PRNGKey(11)
  negatives, _ = sampler.negatives((), key, batch, embeddings, data, {})
  # The pool the sampler drew, through the pool building block with its key.
  pool_key, _ = jax.random.split(key)
  candidates = np.asarray(pools.batch_pools(pool_key, batch.users, data.exclude, 20, 5))
  scores = np.einsum("bf,bhf->bh", np.asarray(embeddings.user)[pairs[:, 0]],
                     np.asarray(embeddings.item)[candidates])
  expected = candidates[np.arange(len(pairs)), scores.argmax(1)]
  np.testing.assert_array_equal(np.asarray(negatives.items)[:, 0], expected)
  np.testing.assert_allclose(negatives.embeddings[:, 0], np.asarray(embeddings.item)[expected])

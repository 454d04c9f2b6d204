"""Samplers: exact exclusion, uniformity, membership, hardest pick, MixGCF."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdns_jax import samplers


def _sets(pairs, num_users):
  return samplers.sorted_sets(np.asarray(pairs), num_users)


def test_candidates_never_hit_excluded_items_and_cover_the_rest():
  num_items = 12
  excluded = {0: [0, 1, 2, 7, 11], 1: [5], 2: list(range(1, 12))}  # user 2 keeps item 0 only
  pairs = [(u, i) for u, items in excluded.items() for i in items]
  sets = _sets(pairs, 3)
  for user, items in excluded.items():
    draw = jax.jit(lambda k, u: samplers.candidate_pool(k, u, sets, num_items, 4000))
    pool = np.asarray(draw(jax.random.PRNGKey(user), jnp.int32(user)))
    allowed = sorted(set(range(num_items)) - set(items))
    assert set(pool.tolist()) == set(allowed), user
    # Uniform over the allowed items: each frequency within 5 sigma of 1/n.
    freq = np.bincount(pool, minlength=num_items)[allowed] / len(pool)
    p = 1.0 / len(allowed)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / len(pool)) + 1e-9)


def test_candidates_for_a_user_without_positives_cover_all_items():
  sets = _sets([(0, 3)], 2)
  pool = samplers.candidate_pool(jax.random.PRNGKey(0), jnp.int32(1), sets, 5, 2000)
  assert set(np.asarray(pool).tolist()) == set(range(5))


def test_random_users_against_rejection_sampling_reference():
  rng = np.random.default_rng(0)
  num_users, num_items = 40, 30
  pairs = [(u, i) for u in range(num_users)
           for i in rng.choice(num_items, rng.integers(0, 29), replace=False)]
  sets = _sets(pairs, num_users)
  users = jnp.arange(num_users)
  keys = jax.random.split(jax.random.PRNGKey(1), num_users)
  pools = jax.vmap(lambda k, u: samplers.candidate_pool(k, u, sets, num_items, 64))(keys, users)
  positives = {(u, i) for u, i in pairs}
  for u, row in enumerate(np.asarray(pools)):
    assert all((u, int(i)) not in positives for i in row)
    assert row.min() >= 0 and row.max() < num_items


def test_contains():
  sets = _sets([(0, 1), (0, 4), (0, 9), (2, 0)], 3)
  check = jax.vmap(lambda u, i: samplers.contains(sets, u, i))
  users = jnp.array([0, 0, 0, 0, 1, 2, 2])
  items = jnp.array([1, 4, 9, 5, 1, 0, 1])
  np.testing.assert_array_equal(check(users, items), [1, 1, 1, 0, 0, 1, 0])


def test_hardest_picks_the_highest_score():
  user = jnp.array([1.0, -1.0])
  candidates = jnp.array([[0.0, 0.0], [2.0, -1.0], [1.0, 1.0], [-3.0, 0.0]])
  assert int(samplers.hardest(user, candidates)) == 1


def test_positive_mix_is_eq4():
  out = samplers.positive_mix(positive=jnp.array([1.0, 0.0]),
                              negative=jnp.array([0.0, 2.0]), alpha=0.25)
  np.testing.assert_allclose(out, [0.25, 1.5])


def test_mixgcf_mixes_per_layer_and_picks_per_layer():
  # Two layers, two candidates, alpha 0 (pure candidates): layer 0 prefers
  # candidate 1, layer 1 prefers candidate 0.
  user = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  positive = jnp.zeros((2, 2))
  candidates = jnp.array([[[0.0, 5.0], [3.0, 0.0]], [[0.0, 4.0], [9.0, 0.0]]])
  pooled, layer0, chosen = samplers.mixgcf_negative(
      user_layers=user, positive_layers=positive, candidate_layers=candidates,
      alpha=jnp.zeros(2))
  np.testing.assert_array_equal(chosen, [1, 0])
  np.testing.assert_allclose(layer0, [3.0, 0.0])
  np.testing.assert_allclose(pooled, [1.5, 2.0])
  # alpha 1 gives the positive itself on every layer.
  pooled, _, _ = samplers.mixgcf_negative(
      user_layers=user, positive_layers=jnp.ones((2, 2)), candidate_layers=candidates,
      alpha=jnp.ones(2))
  np.testing.assert_allclose(pooled, [1.0, 1.0])


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257])
def test_search_steps_cover_large_sets(size):
  pairs = [(0, 2 * i) for i in range(size)]
  sets = _sets(pairs, 1)
  num_items = 2 * size  # the odd items are the only negatives
  pool = np.asarray(samplers.candidate_pool(jax.random.PRNGKey(size), jnp.int32(0), sets,
                                            num_items, 3000))
  assert np.all(pool % 2 == 1) and pool.max() < num_items
  assert len(set(pool.tolist())) == min(size, 3000) or size > 200


def test_padded_subsets_share_shapes_and_sample_the_same():
  full = np.array([(0, 1), (0, 2), (0, 5), (1, 0), (1, 3)])
  subset = full[[0, 3]]
  plain = _sets(subset, 2)
  padded = samplers.sorted_sets(subset, 2, like=full)
  whole = _sets(full, 2)
  assert padded.items.shape == whole.items.shape
  assert padded.search_steps == whole.search_steps
  draw = lambda sets: samplers.candidate_pool(jax.random.PRNGKey(0), jnp.int32(0), sets, 6, 500)
  np.testing.assert_array_equal(draw(plain), draw(padded))

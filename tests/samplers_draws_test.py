"""The fast draws behind the samplers: two-level inverse CDF, repeats by scatter, marks."""

import jax
import jax.numpy as jnp
import numpy as np

from pdns_jax.samplers import pools
from pdns_jax.samplers import srns
import jaxprs
import sampler_runs


def test_weighted_draws_follow_the_weights_and_never_draw_weight_zero():
  # 23 entries (blocks of 5, the last one short), zeros inside and at the end.
  weights = np.array([[0.0, 1, 2, 0, 4, 0.5, 0, 0, 3, 1, 0, 0, 0, 0, 0, 2, 7, 0, 1, 1, 0, 0, 0],
                      [5.0] + [0.0] * 21 + [1.0]])
  draws = 40_000
  drawn = np.asarray(jax.jit(pools.weighted_draws, static_argnums=2)(
      jax.random.PRNGKey(0), jnp.asarray(weights, jnp.float32), draws))
  assert drawn.shape == (2, draws) and drawn.dtype == np.int32
  for row, w in zip(drawn, weights):
    p = w / w.sum()
    freq = np.bincount(row, minlength=len(w)) / draws
    np.testing.assert_array_equal(freq[p == 0], 0.0)
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / draws) + 1e-12), (freq, p)


def test_weighted_draws_of_one_entry_of_mass_among_tiny_ones():
  # Rounding in the block sums must not move a draw onto an entry of weight 0.
  weights = jnp.zeros((4, 1000)).at[:, 999].set(1.0).at[0, 0].set(1e-30)
  drawn = np.asarray(pools.weighted_draws(jax.random.PRNGKey(1), weights, 500))
  assert set(drawn[1:].ravel().tolist()) == {999}
  assert set(drawn[0].ravel().tolist()) <= {0, 999}


def test_repeats_found_by_scatter_equal_the_comparisons():
  positions = jax.random.randint(jax.random.PRNGKey(2), (64, 40), 0, 30)
  np.testing.assert_array_equal(srns.first_occurrence_scatter(positions, 30),
                                srns.first_occurrence(positions))
  assert not np.asarray(srns.first_occurrence(positions)).all()  # the rows do repeat


def test_mark_excluded_marks_exactly_the_revealed_items():
  pairs = [(0, 0), (0, 1), (1, 2)]
  cand = jnp.array([[2, 3, 4], [0, 1, 3]], jnp.int32)
  plain = sampler_runs.train_data(pairs, 2)
  np.testing.assert_array_equal(srns.mark_excluded(cand, plain), cand)  # nothing revealed
  revealed = sampler_runs.train_data(pairs, 2, exclude=pairs + [(0, 3), (1, 0), (1, 3)])
  marked = np.asarray(jax.jit(srns.mark_excluded)(cand, revealed))
  np.testing.assert_array_equal(marked, [[2, -4, 4], [-1, 1, -4]])
  np.testing.assert_array_equal(srns.stored_items(jnp.asarray(marked)), cand)
  # Marking is idempotent: a marked entry stays marked, the items are kept.
  np.testing.assert_array_equal(srns.mark_excluded(jnp.asarray(marked), revealed), marked)


def test_exclusion_mask_marks_each_rows_user_set():
  rng = np.random.default_rng(0)
  pairs = np.array([(u, i) for u in range(7) for i in rng.choice(50, rng.integers(0, 9),
                                                                  replace=False)])
  sets = pools.sorted_sets(pairs, 7)
  users = jnp.array([3, 0, 6, 3, 1])
  mask = np.asarray(pools.exclusion_mask(sets, users, 50))
  expected = np.zeros((5, 50), bool)
  for b, u in enumerate(np.asarray(users)):
    expected[b, pairs[pairs[:, 0] == u, 1]] = True
  np.testing.assert_array_equal(mask, expected)
  assert sets.largest == np.bincount(pairs[:, 0]).max()


def test_mixgcf_step_equals_the_per_example_reference():
  # The step scores mixed candidates without building them; it must pick and
  # pool exactly as `mixgcf_negative` does on the same pool and alphas.
  from pdns_jax.samplers import base, mixgcf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(4)
  pairs = np.array([(u, i) for u in range(6) for i in rng.choice(30, 4, replace=False)])
  data = sampler_runs.train_data(pairs, 6)
  batch = base.Batch(users=jnp.asarray(pairs[:, 0]), positives=jnp.asarray(pairs[:, 1]),
                     mask=jnp.ones(len(pairs)))
  user_layers = jnp.asarray(rng.normal(size=(3, 6, 4)), jnp.float32)
  item_layers = jnp.asarray(rng.normal(size=(3, 30, 4)), jnp.float32)
  sampler = mixgcf.MixGCF(num_items=30, pool_size=5)
  key = jax.random.PRNGKey(3)
  out, _ = jax.jit(sampler.negatives)((), key, batch,
                                      base.Embeddings.of(user_layers, item_layers), data, {})
  pool_key, mix_key = jax.random.split(key)
  pool = pools.batch_pools(pool_key, batch.users, data.exclude, 30, 5)
  alpha = jax.random.uniform(mix_key, (len(pairs), 3))
  first = lambda x: x.swapaxes(0, 1)
  pooled, layer0, chosen = jax.vmap(mixgcf.mixgcf_negative)(
      user_layers=first(user_layers[:, batch.users]),
      positive_layers=first(item_layers[:, batch.positives]),
      candidate_layers=first(item_layers[:, pool]), alpha=alpha)
  np.testing.assert_array_equal(out.items, np.take_along_axis(np.asarray(pool), chosen, 1))
  np.testing.assert_allclose(out.embeddings[:, 0], pooled, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.layer0[:, 0], layer0, rtol=1e-5, atol=1e-6)


def test_weighted_draws_sum_in_full_float32_on_every_backend():
  # The inverse CDF's prefix sums are a product; TF32 (a GPU's default) would skew it.
  precisions = jaxprs.dot_precisions(jax.make_jaxpr(lambda k, w: pools.weighted_draws(k, w, 3))(
      jax.random.PRNGKey(0), jnp.ones((2, 50))))
  assert precisions and all("HIGHEST" in p for p in precisions), precisions


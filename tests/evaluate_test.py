"""Recall@K and NDCG@K against hand-computed values and a plain numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np

from pdns_jax import evaluate
import jaxprs


def _metrics(user_emb, item_emb, targets, excluded, topk, batch_size=2):
  data = evaluate.eval_set(targets=np.asarray(targets), excluded=[np.asarray(e).reshape(-1, 2)
                                                                   for e in excluded],
                           num_users=len(user_emb), batch_size=batch_size)
  out = evaluate.evaluate(jnp.asarray(user_emb, jnp.float32),
                          jnp.asarray(item_emb, jnp.float32), data, topk)
  return {k: float(v) for k, v in out.items()}


def test_hand_computed_case():
  # One user, five items scored 5 > 4 > 3 > 2 > 1 via a 1-d embedding.
  user = [[1.0]]
  items = [[5.0], [4.0], [3.0], [2.0], [1.0]]
  # Item 0 is a training item (masked); targets are items 2 and 4.
  # Ranking after masking: 1, 2, 3, 4 -> hits at ranks 2 and 4 (1-based).
  out = _metrics(user, items, targets=[(0, 2), (0, 4)], excluded=[[(0, 0)]], topk=(2, 4))
  assert out["recall@2"] == 0.5
  assert out["recall@4"] == 1.0
  idcg2 = 1 + 1 / np.log2(3)
  np.testing.assert_allclose(out["ndcg@2"], (1 / np.log2(3)) / idcg2, rtol=1e-6)
  np.testing.assert_allclose(out["ndcg@4"], (1 / np.log2(3) + 1 / np.log2(5)) / idcg2,
                             rtol=1e-6)


def test_idcg_uses_min_of_targets_and_k_and_users_without_targets_are_skipped():
  # User 0: 3 targets, K = 2: IDCG over 2 hits; perfect top-2 -> NDCG 1, recall 2/3.
  # User 1 has no targets and must not count in the average.
  users = [[1.0], [1.0]]
  items = [[3.0], [2.0], [1.0], [0.0]]
  out = _metrics(users, items, targets=[(0, 0), (0, 1), (0, 3)], excluded=[], topk=(2,))
  np.testing.assert_allclose(out["ndcg@2"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(out["recall@2"], 2 / 3, rtol=1e-6)


def _reference(user_emb, item_emb, targets, excluded, k):
  scores = user_emb @ item_emb.T
  for u, i in excluded:
    scores[u, i] = -np.inf
  recalls, ndcgs = [], []
  for u in range(len(user_emb)):
    t = {i for uu, i in targets if uu == u}
    if not t:
      continue
    top = np.argsort(-scores[u], kind="stable")[:k]
    hits = np.array([i in t for i in top], float)
    recalls.append(hits.sum() / len(t))
    dcg = np.sum(hits / np.log2(np.arange(2, k + 2)))
    idcg = np.sum(1 / np.log2(np.arange(2, min(len(t), k) + 2)))
    ndcgs.append(dcg / idcg)
  return np.mean(recalls), np.mean(ndcgs)


def test_matches_numpy_reference_on_random_data():
  rng = np.random.default_rng(0)
  num_users, num_items = 37, 60
  user_emb = rng.normal(size=(num_users, 5)).astype(np.float32)
  item_emb = rng.normal(size=(num_items, 5)).astype(np.float32)
  pairs = np.array([(u, i) for u in range(num_users) for i in range(num_items)
                    if rng.random() < 0.2])
  rng.shuffle(pairs)
  excluded, targets = pairs[: len(pairs) // 2], pairs[len(pairs) // 2:]
  targets = targets[targets[:, 0] % 5 != 0]  # some users without targets
  for batch_size in (1, 8, 100):
    out = _metrics(user_emb, item_emb, targets, [excluded], (5, 20), batch_size)
    for k in (5, 20):
      recall, ndcg = _reference(user_emb, item_emb, targets.tolist(), excluded.tolist(), k)
      np.testing.assert_allclose(out[f"recall@{k}"], recall, rtol=1e-5)
      np.testing.assert_allclose(out[f"ndcg@{k}"], ndcg, rtol=1e-5)


def test_excluded_items_from_several_sets_are_all_masked():
  users = [[1.0]]
  items = [[4.0], [3.0], [2.0], [1.0]]
  # Mask items 0 (train) and 1 (valid): target 2 is then first.
  out = _metrics(users, items, targets=[(0, 2)], excluded=[[(0, 0)], [(0, 1)]], topk=(1,))
  assert out["recall@1"] == 1.0
  out = _metrics(users, items, targets=[(0, 2)], excluded=[[(0, 0)]], topk=(1,))
  assert out["recall@1"] == 0.0


_jitted = jax.jit(evaluate.evaluate, static_argnames=("topk", "item_chunk"))
_top = jax.jit(lambda users, items, data, k, chunk: evaluate._top_items(
    users[data.users[0]], items, data.mask_rows[0], data.mask_cols[0], k, chunk),
               static_argnums=(3, 4))


def _random_case(seed, num_users=23, num_items=57, dim=4):
  rng = np.random.default_rng(seed)
  user_emb = rng.normal(size=(num_users, dim)).astype(np.float32)
  item_emb = rng.normal(size=(num_items, dim)).astype(np.float32)
  pairs = np.array([(u, i) for u in range(num_users) for i in range(num_items)
                    if rng.random() < 0.3])
  rng.shuffle(pairs)
  third = len(pairs) // 3
  return user_emb, item_emb, pairs[:third], pairs[third:2 * third], pairs[2 * third:]


def test_chunked_evaluation_equals_one_chunk_for_every_chunk_size():
  user_emb, item_emb, train, valid, test = _random_case(1)
  data = evaluate.eval_set(targets=test, excluded=[train, valid], num_users=len(user_emb),
                           batch_size=8)
  users, items = jnp.asarray(user_emb), jnp.asarray(item_emb)
  whole = _jitted(users, items, data, (5, 10))
  # 57 items: a chunk that divides it (19: three chunks), one that does not
  # (11: six chunks of 10, three padding rows), and one item (raised to K = 10).
  for chunk in (1, 11, 19):
    chunked = _jitted(users, items, data, (5, 10), item_chunk=chunk)
    for name, value in whole.items():
      assert float(chunked[name]) == float(value), (chunk, name)
  # The ranked ids themselves, not only the metrics, agree.
  np.testing.assert_array_equal(_top(users, items, data, 10, 11),
                                _top(users, items, data, 10, 0))


def test_ties_across_chunk_boundaries_rank_the_lower_item_first():
  # One user, 1-d embeddings: items 0..8 score 1,3,3,2,3,3,0,3,1; item 2 is a
  # training item (masked). The remaining 3s are items 1, 4, 5, 7: with K = 3
  # and chunks of 3 they lie in all three chunks (1 | 4, 5 | 7) and the top-3
  # must keep the lower ids 1, 4, 5, not 7. With K = 5 and chunks of 5
  # (1, 4 | 5, 7) the order is 1, 4, 5, 7, then the 2 (item 3).
  items = jnp.asarray(np.array([1, 3, 3, 2, 3, 3, 0, 3, 1], np.float32)[:, None])
  data = evaluate.eval_set(targets=np.array([[0, 5], [0, 7]]), excluded=[np.array([[0, 2]])],
                           num_users=1, batch_size=1)
  users = jnp.ones((1, 1), jnp.float32)
  for k, chunk, expected in ((3, 0, [1, 4, 5]), (3, 3, [1, 4, 5]), (3, 4, [1, 4, 5]),
                             (5, 0, [1, 4, 5, 7, 3]), (5, 5, [1, 4, 5, 7, 3])):
    np.testing.assert_array_equal(_top(users, items, data, k, chunk)[0], expected)
  for chunk in (0, 3):
    out = _jitted(users, items, data, (2, 3), item_chunk=chunk)
    # Target 5 at rank 3, target 7 just past it.
    assert float(out["recall@2"]) == 0.0 and float(out["recall@3"]) == 0.5
    np.testing.assert_allclose(out["ndcg@3"], (1 / np.log2(4)) / (1 + 1 / np.log2(3)),
                               rtol=1e-6)


def test_users_with_fewer_unmasked_items_than_k_rank_masked_items_last_by_id():
  # 12 items, all but two masked, K = 5 over chunks of 5: the masked (-inf)
  # items fill the top-5 in id order, after the two real ones, never padding.
  items = jnp.asarray(np.arange(12, dtype=np.float32)[:, None])
  masked = np.array([[0, i] for i in range(12) if i not in (3, 9)])
  data = evaluate.eval_set(targets=np.array([[0, 3]]), excluded=[masked], num_users=1,
                           batch_size=1)
  users = jnp.ones((1, 1), jnp.float32)
  for chunk in (5, 7):
    top = _top(users, items, data, 5, chunk)
    np.testing.assert_array_equal(top[0], [9, 3, 0, 1, 2])


def test_scores_are_products_in_full_float32_on_every_backend():
  # A GPU's default product rounds float32 inputs to TF32, which could reorder
  # near-ties; the jaxpr shows the precision asked for, whatever the backend.
  user_emb, item_emb, train, valid, test = _random_case(1)
  data = evaluate.eval_set(targets=test, excluded=[train, valid], num_users=len(user_emb),
                           batch_size=8)
  for chunk in (0, 11):
    precisions = jaxprs.dot_precisions(jax.make_jaxpr(
        lambda u, i: evaluate.evaluate(u, i, data, (10,), item_chunk=chunk))(
            jnp.asarray(user_emb), jnp.asarray(item_emb)))
    assert precisions and all("HIGHEST" in p for p in precisions), precisions


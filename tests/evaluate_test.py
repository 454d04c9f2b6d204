"""Recall@K and NDCG@K against hand-computed values and a plain numpy reference."""

import jax.numpy as jnp
import numpy as np

from pdns_jax import evaluate


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

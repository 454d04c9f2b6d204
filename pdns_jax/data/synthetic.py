"""A built-in dataset with planted low-rank preferences; needs no download.

Each user's positives are the items that score highest under a hidden
low-rank model plus popularity and noise, so held-out positives are real
preferences: with the 4:1:1 split the false-negative set holds true positives
that training never sees, exactly the situation PAPER.md section 4.1 simulates.
"""

from __future__ import annotations

import numpy as np

from pdns_jax.data.core import DataError, Interactions


def params_from_config(config) -> dict:
  s = config.synthetic
  return dict(num_users=s.num_users, num_items=s.num_items, rank=s.rank,
              mean_degree=s.mean_degree, seed=config.data_seed)


def generate(*, num_users: int, num_items: int, rank: int, mean_degree: float,
             seed: int) -> Interactions:
  """Draws the dataset.

  Args:
    num_users, num_items: sizes.
    rank: rank of the hidden preference model.
    mean_degree: mean positives per user (each user has at least 6, so a
      4:1:1 split gives every part an item).
    seed: seed of every draw.
  """
  if num_users < 1 or num_items < 12:
    raise DataError("config.synthetic: need num_users >= 1 and num_items >= 12")
  if not 6 <= mean_degree <= num_items / 2:
    raise DataError("config.synthetic.mean_degree must lie in [6, num_items / 2]")
  rng = np.random.default_rng(seed)
  user_factors = rng.normal(size=(num_users, rank))
  item_factors = rng.normal(size=(num_items, rank))
  popularity = rng.normal(scale=1.0, size=num_items)
  logits = user_factors @ item_factors.T / np.sqrt(rank) + popularity
  logits += rng.gumbel(scale=0.5, size=logits.shape)
  degrees = np.clip(rng.geometric(1.0 / (mean_degree - 5), size=num_users) + 5,
                    6, num_items // 2)
  ranked = np.argsort(-logits, axis=1)
  keep = np.arange(num_items)[None, :] < degrees[:, None]
  users = np.repeat(np.arange(num_users), degrees)
  items = ranked[keep]
  return Interactions(users=users.astype(np.int64), items=items.astype(np.int64),
                      timestamps=None, num_users=num_users, num_items=num_items,
                      name="synthetic",
                      source=f"built-in planted low-rank generator (seed {seed})")

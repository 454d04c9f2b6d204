"""Built-in datasets that need no download: planted preferences, or web-scale logs.

`kind="planted"` (the default): each user's positives are the items that score
highest under a hidden low-rank model plus popularity and noise, so held-out
positives are real preferences: with the 4:1:1 split the false-negative set
holds true positives that training never sees, exactly the situation PAPER.md
section 4.1 simulates. It scores every (user, item) pair: small sizes only.

`kind="zipf"`: interactions shaped like real logs at any size, in memory linear
in interactions (never a users x items array): user activity and item
popularity follow Zipf laws (the r-th most active user / popular item has
weight r^-exponent), pairs are drawn independently from the two, kept as int64
keys user * num_items + item and deduplicated by sorting. The peak memory is
estimated before anything is allocated and a size that does not fit the
budget is refused, naming the amount needed.
"""

from __future__ import annotations

import numpy as np

from pdns_jax.data.core import DataError, Interactions

KINDS = ("planted", "zipf")
# Peak host bytes per interaction of generate_zipf followed by make_split (the
# paper split, which is what load_split runs next): 142 and 135 measured at 4M
# and 16M interactions (ru_maxrss; generation alone 68), rounded up. Per user and per item a few
# int64 arrays. Training needs more (graph, device tables): see
# launch/benchmark.py --scaling for whole-run peaks.
BYTES_PER_INTERACTION = 160
BYTES_PER_ID = 40
# Random draws per block while sampling pairs: bounds the temporaries.
DRAW_BLOCK = 1 << 22


def params_from_config(config) -> dict:
  """The keyword arguments of `generate` (planted) or `generate_zipf`."""
  s = config.synthetic
  if s.get("kind", "planted") == "planted":
    return dict(num_users=s.num_users, num_items=s.num_items, rank=s.rank,
                mean_degree=s.mean_degree, seed=config.data_seed)
  return dict(num_users=s.num_users, num_items=s.num_items,
              num_interactions=s.num_interactions, user_exponent=s.user_exponent,
              item_exponent=s.item_exponent, seed=config.data_seed,
              memory_budget=int(s.memory_budget_gb * 2**30))


def load(config) -> Interactions:
  """Draws config.synthetic.kind's dataset with the config's sizes and data_seed.

  Raises:
    DataError: an unknown kind, impossible sizes, or (zipf) a size whose
      estimated memory exceeds the budget.
  """
  kind = config.synthetic.get("kind", "planted")
  if kind not in KINDS:
    raise DataError(f"config.synthetic.kind: unknown kind {kind!r}; choose one of {KINDS}")
  params = params_from_config(config)
  return generate(**params) if kind == "planted" else generate_zipf(**params)


def available_memory() -> int:
  """Bytes the kernel says a new allocation can get (MemAvailable), or 0 if unknown."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


def zipf_memory_estimate(num_users: int, num_items: int, num_interactions: int) -> int:
  """Peak host bytes to draw and split a zipf dataset of these sizes (an upper estimate)."""
  return (BYTES_PER_INTERACTION * num_interactions +
          BYTES_PER_ID * (num_users + num_items) + DRAW_BLOCK * 40)


def check_memory(needed: int, budget: int, what: str) -> None:
  """Raises DataError, before any allocation, where `needed` bytes exceed the budget.

  Args:
    needed: estimated peak bytes.
    budget: bytes allowed; 0 = the memory available now (/proc/meminfo).
    what: the sizes, for the message.
  """
  source = "config.synthetic.memory_budget_gb"
  if budget <= 0:
    budget, source = available_memory(), "available memory (MemAvailable, /proc/meminfo)"
  if budget > 0 and needed > budget:
    raise DataError(
        f"config.synthetic: {what} needs about {needed / 2**30:.1f} GiB of host memory "
        f"(estimated before allocating), more than the {budget / 2**30:.1f} GiB of the "
        f"{source}; choose fewer interactions or raise config.synthetic.memory_budget_gb")


def zipf_cdf(size: int, exponent: float) -> np.ndarray:
  """Cumulative probabilities of ranks 1..size under p(r) ∝ r^-exponent (float64)."""
  weights = np.arange(1, size + 1, dtype=np.float64) ** -exponent
  cdf = np.cumsum(weights)
  cdf /= cdf[-1]
  return cdf


def _draw(rng: np.random.Generator, cdf: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
  """n ids drawn by rank from `cdf`; rank r (0-based) has id ids[r]."""
  ranks = np.searchsorted(cdf, rng.random(n), side="right")
  return ids[np.minimum(ranks, len(ids) - 1)]  # guards u rounding to the last cdf value


def generate_zipf(*, num_users: int, num_items: int, num_interactions: int,
                  user_exponent: float, item_exponent: float, seed: int,
                  memory_budget: int = 0) -> Interactions:
  """Draws distinct (user, item) pairs with Zipf user activity and item popularity.

  Popular users and items get scattered ids (random permutations), as in real
  logs. Repeated draws are dropped and topped up until exactly
  `num_interactions` distinct pairs remain (a random surplus dropped), which
  flattens the very top of the distributions a little where a heavy user
  meets a popular item again.

  Args:
    num_users, num_items: sizes (ids 0..size-1; a user or item may end up
      without interactions).
    num_interactions: distinct pairs wanted (exactly this many).
    user_exponent, item_exponent: Zipf exponents s >= 0 (p(rank r) ∝ r^-s).
    seed: seed of every draw.
    memory_budget: bytes allowed for the estimated peak; 0 = MemAvailable.

  Raises:
    DataError: sizes that are not positive, more than a fifth of all pairs,
      negative exponents, or an estimated peak beyond the budget.
  """
  what = f"{num_users:,} users x {num_items:,} items x {num_interactions:,} interactions"
  if min(num_users, num_items, num_interactions) < 1:
    raise DataError(f"config.synthetic: {what}: every size must be positive")
  if num_interactions > num_users * num_items // 5:
    # Denser than that, repeats dominate the draws and the top-up crawls.
    raise DataError(f"config.synthetic: {what}: at most a fifth of all "
                    f"{num_users * num_items:,} pairs can be drawn")
  if min(user_exponent, item_exponent) < 0:
    raise DataError("config.synthetic: user_exponent and item_exponent must be >= 0")
  check_memory(zipf_memory_estimate(num_users, num_items, num_interactions),
               memory_budget, what)
  rng = np.random.default_rng(seed)
  user_ids, item_ids = rng.permutation(num_users), rng.permutation(num_items)
  user_cdf, item_cdf = zipf_cdf(num_users, user_exponent), zipf_cdf(num_items, item_exponent)
  keys = np.empty(0, np.int64)
  for _ in range(100):
    missing = num_interactions - len(keys)
    if missing <= 0:
      break
    draw = int(missing * 1.05) + 16  # repeats are dropped below
    fresh = np.empty(len(keys) + draw, np.int64)
    fresh[:len(keys)] = keys
    del keys
    for start in range(0, draw, DRAW_BLOCK):
      size = min(DRAW_BLOCK, draw - start)
      block = fresh[len(fresh) - draw + start:][:size]
      block[:] = _draw(rng, user_cdf, user_ids, size)
      block *= num_items
      block += _draw(rng, item_cdf, item_ids, size)
    fresh.sort()
    keys = fresh[np.concatenate([[True], fresh[1:] != fresh[:-1]])]
    del fresh
  else:
    raise DataError(f"config.synthetic: {what}: still short of distinct pairs after 100 "
                    "rounds of draws; lower the exponents or the interactions")
  if len(keys) > num_interactions:
    keep = np.ones(len(keys), bool)
    keep[rng.choice(len(keys), len(keys) - num_interactions, replace=False)] = False
    keys = keys[keep]
  users, items = np.divmod(keys, num_items)
  del keys
  return Interactions(
      users=users, items=items, timestamps=None, num_users=num_users,
      num_items=num_items, name="synthetic_zipf",
      source=(f"built-in Zipf generator (seed {seed}): user exponent {user_exponent}, "
              f"item exponent {item_exponent}"))


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

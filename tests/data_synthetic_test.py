"""The synthetic generators: planted unchanged, zipf shaped as asked, memory refused early."""

import hashlib

import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import data as data_lib
from pdns_jax.data import core
from pdns_jax.data import registry
from pdns_jax.data import synthetic

# sha256 of users then items (int64 bytes) of the planted smoke and default
# datasets, computed with the generator before the zipf kind was added.
PLANTED_SMOKE = "8bc40e74a45a1000684e59ee7c6286be42e99c80cb2aa38926c7f26d92a6d920"
PLANTED_DEFAULT = "3e8684866ab33ad712342b628a4003eb16f9e87dd22499f95a22cba1529abf3d"


def _digest(data: core.Interactions) -> str:
  return hashlib.sha256(np.ascontiguousarray(data.users, np.int64).tobytes() +
                        np.ascontiguousarray(data.items, np.int64).tobytes()).hexdigest()


def _zipf(**overrides):
  params = dict(num_users=50_000, num_items=50_000, num_interactions=200_000,
                user_exponent=0.6, item_exponent=0.8, seed=0)
  params.update(overrides)
  return synthetic.generate_zipf(**params)


def _slope(ids, size, first=10, last=1000):
  """Log-log slope of the sorted counts over ranks first..last (noisy below ~10 counts)."""
  counts = np.sort(np.bincount(ids, minlength=size))[::-1][first - 1:last]
  return np.polyfit(np.log(np.arange(first, last + 1)), np.log(counts), 1)[0]


def test_planted_default_is_unchanged():
  smoke = synthetic_config.get_config("smoke")
  assert smoke.synthetic.kind == "planted"
  data = registry.load_interactions(smoke)
  assert (data.num_users, data.num_items, len(data.users)) == (60, 120, 941)
  assert _digest(data) == PLANTED_SMOKE
  default = synthetic_config.get_config()
  default.synthetic.num_users, default.synthetic.num_items = 600, 1000
  default.synthetic.mean_degree = 40.0
  assert _digest(registry.load_interactions(default)) == PLANTED_DEFAULT


@pytest.mark.parametrize("user_exponent,item_exponent", [(0.6, 0.8), (0.9, 0.5)])
def test_zipf_popularity_and_activity_follow_the_exponents(user_exponent, item_exponent):
  data = _zipf(user_exponent=user_exponent, item_exponent=item_exponent)
  assert len(data.users) == 200_000
  # Dedupe flattens the very top a little and sorting noisy counts the tail:
  # 0.05 covers both at this size (seen: within 0.03).
  assert abs(_slope(data.items, data.num_items) + item_exponent) < 0.05
  assert abs(_slope(data.users, data.num_users) + user_exponent) < 0.05


def test_zipf_pairs_are_distinct_in_range_and_seeded():
  data = _zipf(num_users=3000, num_items=2000, num_interactions=100_000)
  keys = data.users * data.num_items + data.items
  assert len(np.unique(keys)) == len(keys) == 100_000
  assert data.users.min() >= 0 and data.users.max() < 3000
  assert data.items.min() >= 0 and data.items.max() < 2000
  again = _zipf(num_users=3000, num_items=2000, num_interactions=100_000)
  np.testing.assert_array_equal(again.items, data.items)
  assert not np.array_equal(_zipf(num_users=3000, num_items=2000, num_interactions=100_000,
                                  seed=1).items, data.items)


def test_zipf_small_config_loads_and_splits_8_1_1():
  config = synthetic_config.get_config("zipf_small")
  split = data_lib.load_split(config, use_cache=False)
  total = len(split.train) + len(split.valid) + len(split.test)
  assert total == config.synthetic.num_interactions == 200_000
  assert abs(len(split.test) / total - 0.1) < 0.02
  assert abs(len(split.valid) / total - 0.1) < 0.02
  assert len(split.fn) == 0 and split.name == "synthetic_zipf"


def test_memory_estimate_refuses_an_absurd_size_before_allocating():
  needed = synthetic.zipf_memory_estimate(10**9, 10**9, 10**12)
  with pytest.raises(data_lib.DataError, match=r"needs about 1490\d\d\.\d GiB"):
    _zipf(num_users=10**9, num_items=10**9, num_interactions=10**12)  # MemAvailable
  assert needed > 10**14
  with pytest.raises(data_lib.DataError, match=r"more than the 0\.0 GiB of the "
                     r"config.synthetic.memory_budget_gb"):
    _zipf(memory_budget=1000)
  config = synthetic_config.get_config("web")
  config.synthetic.memory_budget_gb = 1.0
  with pytest.raises(data_lib.DataError, match="1,000,000 users x 1,000,000 items x "
                     "50,000,000 interactions needs about 7.7 GiB"):
    registry.load_interactions(config)


def test_zipf_bad_sizes_are_clear_errors():
  with pytest.raises(data_lib.DataError, match="a fifth of all"):
    _zipf(num_users=10, num_items=10, num_interactions=30)
  with pytest.raises(data_lib.DataError, match="must be positive"):
    _zipf(num_interactions=0)
  with pytest.raises(data_lib.DataError, match=">= 0"):
    _zipf(item_exponent=-1.0)
  config = synthetic_config.get_config("smoke")
  config.synthetic.kind = "powerlaw"
  with pytest.raises(data_lib.DataError, match="unknown kind 'powerlaw'"):
    registry.load_interactions(config)

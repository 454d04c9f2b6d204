"""Dataset loaders: hand-computed fixtures in the raw formats, and the real files."""

import gzip
import logging
import shutil

import h5py
import numpy as np
import pytest

from configs import default
from conftest import ROOT, SHARED_DATA
from pdns_jax import data as data_lib
from pdns_jax.data import douban, gowalla, movielens, substitutes, tianchi
from pdns_jax.data.core import make_split

FIXTURES = ROOT / "tests" / "fixtures"
TIANCHI_SAMPLE = SHARED_DATA / "taobao" / "tianchi_sample" / "UserBehavior.csv.gz"


def _config(dataset, data_dir, **subset):
  c = default.get_config()
  c.unlock()
  c.dataset, c.data_dir = dataset, str(data_dir)
  c.subset.update(subset)
  return c.lock()


def _pairs(data):
  """{(user, item): time} of an Interactions, ids as they are."""
  times = data.timestamps if data.timestamps is not None else [None] * len(data.users)
  return {(int(u), int(i)): None if t is None else int(t)
          for u, i, t in zip(data.users, data.items, times)}


def _gzip_copy(src, dst):
  dst.parent.mkdir(parents=True, exist_ok=True)
  with open(src, "rb") as f, gzip.open(dst, "wb") as g:
    g.write(f.read())
  return dst


# Raw Tianchi logs (fixtures written by hand in the exact formats).

def test_taobao_raw_fixture_by_hand():
  # min 3: user 100 (items 11 twice, 12, 13) and 300 (5 items) stay; 200 has
  # 4 rows but 2 items, 400 one row. Item 11's repeat keeps its latest time.
  data = tianchi.load_raw(FIXTURES / "taobao" / "UserBehavior.csv", "taobao",
                          min_interactions=3, num_users=0, seed=0)
  assert (data.num_users, data.num_items, data.num_interactions) == (2, 8, 8)
  assert _pairs(data) == {
      (0, 0): 1511658300, (0, 1): 1511658100, (0, 2): 1511658200,
      (1, 3): 1511659000, (1, 4): 1511659100, (1, 5): 1511659200,
      (1, 6): 1511659300, (1, 7): 1511659400}
  assert "the paper's source" in data.source and "all 2 users" in data.source
  assert data.user_ids.tolist() == [100, 300]


def test_tmall_raw_fixture_skips_header_and_orders_mmdd(tmp_path):
  path = FIXTURES / "tmall" / "user_log_format1.csv"
  data = tianchi.load_raw(path, "tmall", min_interactions=3, num_users=0, seed=0)
  # Users 7 and 9 stay (8 has 2 items); 501's repeat keeps 1011 over 829; an
  # empty brand_id (unused column) is fine.
  assert _pairs(data) == {(0, 0): 1011, (0, 1): 1101, (0, 2): 511, (1, 3): 1111,
                          (1, 4): 1110, (1, 5): 620, (1, 6): 715}
  gz = tianchi.load_raw(_gzip_copy(path, tmp_path / "log.csv.gz"), "tmall",
                        min_interactions=3, num_users=0, seed=0, chunk_bytes=16)
  assert _pairs(gz) == _pairs(data)


def test_tianchi_sample_real_rows():
  data = tianchi.load_raw(TIANCHI_SAMPLE, "taobao", min_interactions=10,
                          num_users=0, seed=0)
  # 117 users have >= 10 rows, 97 of them >= 10 distinct items.
  assert (data.num_users, data.num_items, data.num_interactions) == (97, 1093, 1104)
  assert np.bincount(data.users).min() >= 10
  small_chunks = tianchi.load_raw(TIANCHI_SAMPLE, "taobao", min_interactions=10,
                                  num_users=0, seed=0, chunk_bytes=4096)
  assert _pairs(small_chunks) == _pairs(data)
  split = make_split(data, "paper", 0)
  assert sum(split.counts().values()) == 1104
  time_of = {(u, i): t for (u, i), t in _pairs(data).items()}
  for user in range(data.num_users):
    test = [time_of[tuple(p)] for p in split.test if p[0] == user]
    seen = [time_of[tuple(p)] for p in np.concatenate([split.train, split.valid])
            if p[0] == user]
    assert test and min(test) >= max(seen)  # latest 10% per user held out


def test_tianchi_subset_is_seeded_and_says_so():
  def load(num_users, seed):
    return tianchi.load_raw(TIANCHI_SAMPLE, "taobao", min_interactions=10,
                            num_users=num_users, seed=seed)
  a, b, c = load(40, 0), load(40, 0), load(40, 1)
  assert a.num_users == 40 and _pairs(a) == _pairs(b) and _pairs(a) != _pairs(c)
  assert "97 users with >= 10 interactions; a seeded random 40" in a.source
  everyone = load(1000, 0)
  assert everyone.num_users == 97
  assert "only 97 users" in everyone.source and "all of them kept" in everyone.source


def _reference(users, items, times, min_interactions, num_users, seed):
  """The subset rule in memory: dedupe, qualify, lowest user_priority first."""
  rows = {}
  for u, i, t in zip(users, items, times):
    rows[(u, i)] = max(t, rows.get((u, i), t))
  counts = {}
  for u, _ in rows:
    counts[u] = counts.get(u, 0) + 1
  qualified = np.array(sorted(u for u, n in counts.items() if n >= min_interactions))
  order = qualified[np.argsort(tianchi.user_priority(qualified, seed))]
  kept = set((order[:num_users] if num_users else order).tolist())
  return {k: t for k, t in rows.items() if k[0] in kept}


@pytest.mark.parametrize("num_users,min_batch", [(0, 1 << 16), (25, 1 << 16), (25, 4),
                                                  (500, 4)])
def test_preprocess_matches_in_memory_reference(monkeypatch, num_users, min_batch):
  # A small minimum batch forces several passes over the data.
  monkeypatch.setattr(tianchi, "MIN_BATCH_USERS", min_batch)
  rng = np.random.default_rng(0)
  n = 3000
  users = rng.integers(-50, 150, n) * 7919  # sparse, negative raw ids too
  items = rng.integers(0, 30, n)
  times = rng.integers(0, 100, n)

  def chunks():
    for start in range(0, n, 311):
      yield users[start:start + 311], items[start:start + 311], times[start:start + 311]

  u, i, t, _ = tianchi.preprocess(chunks, min_interactions=12,
                                  num_users=num_users, seed=3)
  got = {(a, b): c for a, b, c in zip(u.tolist(), i.tolist(), t.tolist())}
  assert got == _reference(users.tolist(), items.tolist(), times.tolist(), 12,
                           num_users, 3)


def test_user_priority_is_a_seeded_permutation_key():
  ids = np.arange(-1000, 1000)
  keys = tianchi.user_priority(ids, 0)
  assert len(np.unique(keys)) == len(ids)
  assert not np.array_equal(np.argsort(keys), np.argsort(tianchi.user_priority(ids, 1)))
  np.testing.assert_array_equal(keys[10:20], tianchi.user_priority(ids[10:20], 0))


# Substitutes, and which source a dataset name uses.

def test_tmall_and_taobao_substitutes_real_counts():
  tmall = data_lib.load_interactions(_config("tmall", SHARED_DATA, num_users=10_000))
  assert (tmall.num_users, tmall.num_items, tmall.num_interactions) == (10_000, 11_943, 187_453)
  assert "SUBSTITUTE" in tmall.source and "18,589 users with >= 10" in tmall.source
  assert tmall.timestamps is None and np.bincount(tmall.users).min() >= 10
  taobao = data_lib.load_interactions(_config("taobao", SHARED_DATA, num_users=22_976))
  assert (taobao.num_users, taobao.num_items, taobao.num_interactions) == (12_336, 11_931, 256_946)
  assert "only 12,336 users" in taobao.source
  split = make_split(taobao, "paper", 0)
  assert "no timestamps" in split.description


def test_raw_log_is_preferred_over_the_substitute(tmp_path):
  folder = tmp_path / "taobao"
  shutil.copytree(SHARED_DATA / "taobao", folder, ignore=shutil.ignore_patterns("tianchi_sample"))
  shutil.copy(FIXTURES / "taobao" / "UserBehavior.csv", folder)
  data = data_lib.load_interactions(_config("taobao", tmp_path, min_interactions=3))
  assert data.num_interactions == 8 and "UserBehavior" in data.source


def test_substitute_reads_view_file_when_present(tmp_path):
  folder = tmp_path / "taobao"
  folder.mkdir()
  for name in ("buy", "cart", "valid", "test"):
    (folder / f"{name}.txt").write_text("1 1\n1 2\n2 1\n")
  (folder / "view.txt").write_text("1 3\n2 2\n2 3\n")
  data = substitutes.load(tmp_path, "taobao", _config("taobao", tmp_path, min_interactions=3))
  assert (data.num_users, data.num_interactions) == (2, 6)
  assert "view.txt" in data.source and "clicks from view.txt" in data.source


# Gowalla.

def test_gowalla_fixture_keeps_its_test_split(tmp_path):
  data = gowalla.load(FIXTURES)
  # (2, 0) is listed in train and test: it stays test only.
  test = {(u, i) for (u, i), t in zip(_pairs(data), data.is_test) if t}
  assert test == {(0, 3), (1, 4), (1, 0), (2, 1), (2, 0)}
  assert data.num_interactions == 11 and (data.num_users, data.num_items) == (3, 5)
  # Gzipped, and test.txt in lightgcn_raw/ as in ../shared/data.
  _gzip_copy(FIXTURES / "gowalla" / "train.txt", tmp_path / "gowalla" / "train.txt.gz")
  _gzip_copy(FIXTURES / "gowalla" / "test.txt",
             tmp_path / "gowalla" / "lightgcn_raw" / "test.txt.gz")
  again = gowalla.load(tmp_path)
  assert _pairs(again) == _pairs(data)
  np.testing.assert_array_equal(again.is_test, data.is_test)


def test_gowalla_real_counts_and_split():
  data = gowalla.load(SHARED_DATA)
  assert (data.num_users, data.num_items, data.num_interactions) == (29_858, 40_981, 1_027_370)
  assert data.is_test.sum() == 217_242
  split = make_split(data, "paper", 0)
  assert len(split.test) == 217_242
  assert len(split.train) + len(split.valid) == 810_128
  assert len(split.valid) == pytest.approx(810_128 / 9, rel=0.01)


# Douban.

def test_douban_real_counts():
  data = douban.load(SHARED_DATA)
  assert (data.num_users, data.num_items, data.num_interactions) == (2_999, 3_000, 136_891)
  assert data.timestamps is None and data.is_test is None
  assert "1 of 3000 users have no rating" in data.source


def test_douban_reads_the_transposed_hdf5_matrix(tmp_path):
  ratings = np.zeros((4, 3))  # users x items
  ratings[0, 2], ratings[1, 0], ratings[3, 1], ratings[3, 2] = 5, 1, 3, 4
  (tmp_path / "douban").mkdir()
  with h5py.File(tmp_path / "douban" / "training_test_dataset.mat", "w") as f:
    f["M"] = ratings.T  # MATLAB v7.3 stores column-major
  data = douban.load(tmp_path)
  # User 2 has no rating: dropped, user 3 becomes 2.
  assert set(_pairs(data)) == {(0, 2), (1, 0), (2, 1), (2, 2)}
  assert data.num_users == 3 and "1 of 4 users" in data.source
  # The raw ids are the matrix's row and column indices.
  assert data.user_ids.tolist() == [0, 1, 3] and data.item_ids.tolist() == [0, 1, 2]


def test_load_split_caches_the_substitute_split():
  config = _config("tmall", SHARED_DATA, num_users=10_000)
  first = data_lib.load_split(config)
  again = data_lib.load_split(config)
  np.testing.assert_array_equal(first.test, again.test)
  assert first.counts() == again.counts()


# Movielens-100k, and repeated rows in any source.

def test_ml100k_keeps_u_data_ids():
  data = movielens.load(SHARED_DATA)
  table = np.loadtxt(SHARED_DATA / "ml-100k" / "u.data", dtype=np.int64)
  np.testing.assert_array_equal(data.user_ids, np.unique(table[:, 0]))
  np.testing.assert_array_equal(data.user_ids[data.users], table[:, 0])
  np.testing.assert_array_equal(data.item_ids[data.items], table[:, 1])
  np.testing.assert_array_equal(data.timestamps, table[:, 3])


@pytest.mark.parametrize("kind", ["paper", "fn"])
def test_u_data_listed_twice_splits_as_listed_once(tmp_path, kind, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  (tmp_path / "ml-100k").mkdir()
  (tmp_path / "ml-100k" / "u.data").write_bytes(
      (SHARED_DATA / "ml-100k" / "u.data").read_bytes() * 2)

  def split_of(data_dir):
    c = _config("ml100k", data_dir)
    with c.unlocked():
      c.split = kind
    return data_lib.load_split(c, use_cache=False)

  doubled, once = split_of(tmp_path), split_of(SHARED_DATA)
  assert "100,000 repeated (user, item) rows collapsed" in caplog.text
  for part in ("train", "valid", "test", "fn", "user_ids", "item_ids"):
    np.testing.assert_array_equal(getattr(doubled, part), getattr(once, part))
  keys = np.concatenate([getattr(doubled, p)[:, 0] * 10_000 + getattr(doubled, p)[:, 1]
                         for p in ("train", "valid", "test", "fn")])
  assert len(keys) == len(np.unique(keys)) == 100_000

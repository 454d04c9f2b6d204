"""The split cache: keyed on file content, never serving a broken or stale split,
and falling back to no cache where its folder cannot be written."""

import hashlib
import json
import logging
import os
import tempfile
import time

import numpy as np
import pytest

from configs import default
from conftest import SHARED_DATA
from pdns_jax import data as data_lib
from pdns_jax.data import cache, core

# Three users, ten items each; user u rated item i at time 100 * u + i.
U_DATA = "".join(f"{u}\t{i}\t3\t{100 * u + i}\n" for u in (1, 2, 3) for i in range(10, 20))


def _config(data_dir, dataset="ml100k", split="paper"):
  c = default.get_config()
  c.unlock()
  c.dataset, c.data_dir, c.split = dataset, str(data_dir), split
  return c.lock()


def _write_u_data(root, text=U_DATA):
  path = root / "ml-100k" / "u.data"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


def _raw_pairs(split):
  """The split's (user, item) pairs of all parts, in the source's ids."""
  pairs = np.concatenate([getattr(split, p) for p in core.PARTS])
  return set(zip(split.user_ids[pairs[:, 0]].tolist(),
                 split.item_ids[pairs[:, 1]].tolist()))


def _assert_same_split(a, b):
  for part in core.PARTS + ("user_ids", "item_ids"):
    np.testing.assert_array_equal(getattr(a, part), getattr(b, part), err_msg=part)


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
  folder = tmp_path / "cache"
  monkeypatch.setenv("PDNS_CACHE_DIR", str(folder))
  return folder


def test_an_edit_keeping_size_and_mtime_builds_a_new_split(tmp_path, cache_folder):
  path = _write_u_data(tmp_path / "data")
  first = data_lib.load_split(_config(tmp_path / "data"))
  assert (1, 10) in _raw_pairs(first)
  before = path.stat()
  time.sleep(0.05)  # past the coarse ctime tick of the first write
  with open(path, "r+b") as f:  # in place: same inode, same size
    f.write(b"1\t21")  # item 10 -> 21 on line 1
  os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
  after = path.stat()
  assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
      before.st_size, before.st_mtime_ns, before.st_ino)
  second = data_lib.load_split(_config(tmp_path / "data"))
  assert _raw_pairs(second) == _raw_pairs(first) - {(1, 10)} | {(1, 21)}
  assert len(list(cache_folder.glob("*.npz"))) == 2


def test_file_hashes_are_memoised_until_the_file_changes(tmp_path, cache_folder,
                                                         monkeypatch):
  monkeypatch.setattr(cache, "RACY_NS", 0)  # the file is seconds old at most
  path = _write_u_data(tmp_path / "data")
  first = data_lib.load_split(_config(tmp_path / "data"))
  memo = json.loads((cache_folder / cache.DIGESTS_FILE).read_text())
  assert memo[str(path.resolve())]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

  def no_hashing(*args):
    raise AssertionError("hashed again although the file is unchanged")

  monkeypatch.setattr(hashlib, "file_digest", no_hashing)
  _assert_same_split(first, data_lib.load_split(_config(tmp_path / "data")))
  time.sleep(0.05)
  path.write_text(U_DATA.replace("\t3\t", "\t4\t"))  # same size, new content
  with pytest.raises(AssertionError, match="hashed again"):
    data_lib.load_split(_config(tmp_path / "data"))


def test_recently_changed_files_are_hashed_every_time(tmp_path, cache_folder):
  _write_u_data(tmp_path / "data")
  data_lib.load_split(_config(tmp_path / "data"))
  # Seconds old at most: its stamp might not show a write in the same tick.
  assert not (cache_folder / cache.DIGESTS_FILE).exists()


def test_user_and_item_ids_survive_the_cache(tmp_path, cache_folder, monkeypatch):
  config = _config(SHARED_DATA)
  built = data_lib.load_split(config)
  monkeypatch.setattr(cache, "load_interactions", None)  # must come from the cache
  cached = data_lib.load_split(config)
  _assert_same_split(built, cached)
  assert cached.user_ids.dtype == np.int64 and cached.item_ids.dtype == np.int64
  # Internal ids map back to u.data's own ids, pair for pair.
  table = np.loadtxt(SHARED_DATA / "ml-100k" / "u.data", dtype=np.int64)
  assert _raw_pairs(cached) == set(zip(table[:, 0].tolist(), table[:, 1].tolist()))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "folder"])
def test_a_damaged_cache_file_is_rebuilt(tmp_path, cache_folder, damage):
  _write_u_data(tmp_path / "data")
  config = _config(tmp_path / "data")
  first = data_lib.load_split(config)
  (path,) = cache_folder.glob("*.npz")
  if damage == "truncated":  # as if a writer without atomic rename died
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  elif damage == "garbage":
    path.write_bytes(b"garbage")
  else:
    path.unlink()
    path.mkdir()
  _assert_same_split(first, data_lib.load_split(config))
  if damage != "folder":
    _assert_same_split(first, core.Split.load(path))  # rewritten whole


def test_cache_folder_under_a_regular_file_means_no_cache(tmp_path, monkeypatch,
                                                          caplog):
  _write_u_data(tmp_path / "data")
  (tmp_path / "not_a_folder").write_text("")
  monkeypatch.setenv("PDNS_CACHE_DIR", str(tmp_path / "not_a_folder" / "cache"))
  caplog.set_level(logging.INFO, logger="absl")
  split = data_lib.load_split(_config(tmp_path / "data"))
  _assert_same_split(split, data_lib.load_split(_config(tmp_path / "data"),
                                                use_cache=False))
  assert "cannot write the split cache" in caplog.text


def test_cache_folder_that_refuses_writes_means_no_cache(tmp_path, cache_folder,
                                                         monkeypatch, caplog):
  # Tests run as root, whom chmod does not stop: refuse as a read-only folder would.
  def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied", str(cache_folder))

  _write_u_data(tmp_path / "data")
  monkeypatch.setattr(tempfile, "mkstemp", refuse)
  caplog.set_level(logging.WARNING, logger="absl")
  split = data_lib.load_split(_config(tmp_path / "data"))
  assert split.counts() == {"train": 24, "valid": 3, "test": 3, "fn": 0}
  assert "cannot write the split cache" in caplog.text
  assert not cache_folder.exists() or not list(cache_folder.iterdir())

"""The split cache: one npz per dataset, split, seed and source-file content.

A cached split is reused only while the files it was built from hold the same
bytes, so the key carries a content hash of every file in the dataset's folder
(size and mtime alone miss an edit that keeps both). Hashing is memoised in a
small json beside the splits, keyed by each file's path, size, mtime, inode
and ctime; ctime changes on any write and cannot be set back by a user, so an
edit whose mtime was restored is still seen (a file changed in the last two
seconds is hashed afresh, as ctime ticks coarsely). Splits and the memo are written
atomically; a cache file that cannot be read is rebuilt, and a cache folder
that cannot be written only costs the caching (with a warning).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import time

from absl import logging

from pdns_jax.data.core import CACHE_VERSION, Split, atomic_write, make_split
from pdns_jax.data.io import open_binary
from pdns_jax.data.registry import load_interactions
from pdns_jax.data.sources import DATASET_FOLDERS, cache_dir, resolve_data_dir

# The hash memo's file name in the cache folder.
DIGESTS_FILE = "file_digests.json"
# The kernel stamps ctime from a coarse clock (ms), so a file written again
# within one tick of being hashed keeps its stamp. Hashes of files changed this
# recently are therefore not memoised (what git calls "racily clean" files).
RACY_NS = 2_000_000_000


def _stamp(path: pathlib.Path) -> list[int]:
  """What changes whenever a file's bytes may have (ctime: on every write)."""
  st = path.stat()
  return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def file_digest(path: pathlib.Path, memo: dict) -> str:
  """sha256 of a file's bytes, from `memo` while the file's stamp is unchanged.

  Args:
    path: the file.
    memo: {resolved path: {"stamp": [...], "sha256": hex}}; updated in place.

  Raises:
    DataError: naming the file where it cannot be read.
  """
  key = str(pathlib.Path(path).resolve())
  stamp = _stamp(path)
  entry = memo.get(key)
  if isinstance(entry, dict) and entry.get("stamp") == stamp:
    return entry["sha256"]
  with open_binary(path, gunzip=False) as f:
    digest = hashlib.file_digest(f, "sha256").hexdigest()
  if time.time_ns() - stamp[3] >= RACY_NS:
    memo[key] = {"stamp": stamp, "sha256": digest}
  return digest


def folder_digests(folder: pathlib.Path, memo: dict) -> list[tuple[str, str]]:
  """(relative path, sha256) of every file under a dataset folder, sorted.

  Every file, not only those the loader reads: adding, replacing or removing
  one (say the raw Tianchi log beside the substitute) builds a new split.
  """
  if not folder.is_dir():
    return []
  return sorted((str(p.relative_to(folder)), file_digest(p, memo))
                for p in folder.rglob("*") if p.is_file())


def _read_memo(folder: pathlib.Path) -> dict:
  try:
    memo = json.loads((folder / DIGESTS_FILE).read_text())
  except (OSError, ValueError):
    return {}  # absent, unreadable or damaged: hash again
  return memo if isinstance(memo, dict) else {}


def _write_memo(folder: pathlib.Path, memo: dict) -> None:
  # Files gone since (temporary data folders) would otherwise pile up.
  memo = {k: v for k, v in memo.items() if pathlib.Path(k).exists()}
  try:
    atomic_write(folder / DIGESTS_FILE,
                 lambda f: f.write(json.dumps(memo, sort_keys=True).encode()))
  except OSError as e:
    # The split's own write reports an unwritable folder; this costs a rehash.
    logging.info("could not save file hashes to %s (%s)", folder / DIGESTS_FILE, e)


def cache_key(config, memo: dict | None = None) -> str:
  """The split's cache file name (without .npz) for config.

  Args:
    config: reads dataset, split, data_seed, data_dir, and synthetic / subset
      where present.
    memo: file hashes as `file_digest` keeps them; updated in place.

  Raises:
    DataError: naming a file of the dataset's folder that cannot be read.
  """
  data_dir = resolve_data_dir(config.get("data_dir")).resolve()
  folder = DATASET_FOLDERS.get(config.dataset)
  files = folder_digests(data_dir / folder, {} if memo is None else memo) if folder else []
  fields = {"version": CACHE_VERSION, "dataset": config.dataset,
            "split": config.split, "data_seed": config.data_seed,
            "data_dir": str(data_dir), "files": files}
  if config.get("valid_order", "time") != "time":  # keys of older caches stay valid
    fields["valid_order"] = config.valid_order
  for name in ("synthetic", "subset"):
    if name in config:
      fields[name] = config[name].to_dict()
  digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
  return f"{config.dataset}_{config.split}_{digest[:16]}"


def _read_cached(path: pathlib.Path) -> Split | None:
  """The split cached at `path`, or None where there is none or it is unreadable."""
  if not path.is_file():
    return None
  try:
    return Split.load(path)
  except Exception as e:  # pylint: disable=broad-except
    # Whatever is wrong with it (truncated, foreign, an old layout), the split
    # is rebuilt from the data, which is always right.
    logging.warning("unreadable split cache %s (%s): rebuilding it", path, e)
    try:
      path.unlink()
    except OSError:
      pass
    return None


def load_split(config, use_cache: bool = True) -> Split:
  """Loads config.dataset, splits it as config.split says, caches the result.

  Args:
    config: as for `load_interactions`, plus split and data_seed.
    use_cache: read and write the cache in `cache_dir()`.

  Returns:
    The split; from the cache where one was built from the same file content
    with the same settings.

  Raises:
    DataError: where the data files are absent, unreadable or malformed.
  """
  if not use_cache:
    return make_split(load_interactions(config), config.split, config.data_seed,
                      valid_order=config.get("valid_order", "time"))
  folder = cache_dir()
  memo = _read_memo(folder)
  hashed = dict(memo)
  path = folder / (cache_key(config, memo) + ".npz")
  split = _read_cached(path)
  if split is None:
    split = make_split(load_interactions(config), config.split, config.data_seed,
                      valid_order=config.get("valid_order", "time"))
    try:
      split.save(path)
    except OSError as e:
      logging.warning("cannot write the split cache %s (%s); continuing without "
                      "caching. Set PDNS_CACHE_DIR to a writable folder to cache "
                      "splits", path, e)
      return split
  # Only once the data loaded: a failed load leaves the cache folder as it was.
  if memo != hashed:
    _write_memo(folder, memo)
  return split

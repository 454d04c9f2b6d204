"""Datasets: loaders -> `Interactions` -> the paper's split -> cached `Split`.

`load_split(config)` is the one entry point the trainer uses. Loaders are
registered by dataset name in `LOADERS`; each takes (data_dir, config) and
returns an `Interactions`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Callable

from pdns_jax.data.core import (DataError, Interactions, Split, atomic_write,
                                make_split, CACHE_VERSION)

__all__ = ["DataError", "Interactions", "Split", "LOADERS", "load_split",
           "load_interactions", "resolve_data_dir", "cache_dir", "require_file",
           "atomic_write", "make_split"]


def _load_ml100k(data_dir, config):
  from pdns_jax.data import movielens
  return movielens.load(data_dir)


def _load_synthetic(data_dir, config):
  del data_dir
  from pdns_jax.data import synthetic
  return synthetic.generate(**synthetic.params_from_config(config))


def _load_douban(data_dir, config):
  del config
  from pdns_jax.data import douban
  return douban.load(data_dir)


def _load_gowalla(data_dir, config):
  del config
  from pdns_jax.data import gowalla
  return gowalla.load(data_dir)


def _tianchi_loader(dataset):
  def load(data_dir, config):
    from pdns_jax.data import tianchi
    return tianchi.load(data_dir, dataset, config)
  return load


LOADERS: dict[str, Callable[[pathlib.Path, object], Interactions]] = {
    "ml100k": _load_ml100k,
    "synthetic": _load_synthetic,
    "douban": _load_douban,
    "gowalla": _load_gowalla,
    "taobao": _tianchi_loader("taobao"),
    "tmall": _tianchi_loader("tmall"),
}

# The folder under the data directory that holds each dataset's files.
DATASET_FOLDERS = {"ml100k": "ml-100k", "douban": "douban", "gowalla": "gowalla",
                   "taobao": "taobao", "tmall": "tmall"}

# Where each dataset comes from, for the message shown when a file is missing.
HOW_TO_OBTAIN = {
    "ml100k": ("run `python -m pdns_jax.data.download ml100k`, or download "
               "https://files.grouplens.org/datasets/movielens/ml-100k.zip "
               "and unzip it so that ml-100k/u.data lies in the data folder"),
    "douban": ("download gcmc/data/douban/training_test_dataset.mat from the "
               "GitHub repository riannevdberg/gc-mc into douban/"),
    "gowalla": ("run `python -m pdns_jax.data.download gowalla`, or download "
                "train.txt and test.txt from https://raw.githubusercontent.com/"
                "gusye1234/LightGCN-PyTorch/master/data/gowalla/ into gowalla/"),
    "taobao": ("put UserBehavior.csv from Tianchi's 'User Behavior Data from "
               "Taobao for Recommendation' (needs a Tianchi account) in taobao/, or the substitute buy.txt, cart.txt, "
               "valid.txt, test.txt from the GitHub repository geonwooko/MULE, "
               "data/taobao/"),
    "tmall": ("put user_log_format1.csv from Tianchi's IJCAI-15 'Repeat Buyers "
              "Prediction' data_format1 (needs a Tianchi account) in tmall/, or the substitute buy.txt, cart.txt, "
              "collect.txt, valid.txt, test.txt from the GitHub repository "
              "geonwooko/MULE, data/tmall/"),
}


def resolve_data_dir(data_dir: str | None) -> pathlib.Path:
  """config.data_dir, else $PDNS_DATA_DIR, else a per-user cache folder."""
  if data_dir:
    return pathlib.Path(data_dir).expanduser()
  if os.environ.get("PDNS_DATA_DIR"):
    return pathlib.Path(os.environ["PDNS_DATA_DIR"]).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "pdns_jax" / "data"


def cache_dir() -> pathlib.Path:
  """Where processed splits are cached: $PDNS_CACHE_DIR or ~/.cache/pdns_jax/splits."""
  if os.environ.get("PDNS_CACHE_DIR"):
    return pathlib.Path(os.environ["PDNS_CACHE_DIR"]).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "pdns_jax" / "splits"


def require_file(path: pathlib.Path, dataset: str) -> pathlib.Path:
  """Returns `path` if it exists, else raises a DataError saying how to get it."""
  path = pathlib.Path(path)
  if path.is_file():
    return path
  how = HOW_TO_OBTAIN.get(dataset, "see README.md, section Datasets")
  raise DataError(
      f"{dataset}: data file {path} not found. To obtain it: {how}. Point "
      "--config.data_dir or the PDNS_DATA_DIR environment variable at the folder "
      "that holds the dataset folders (for example ../shared/data).")


def load_interactions(config) -> Interactions:
  """Runs the registered loader for config.dataset."""
  if config.dataset not in LOADERS:
    raise DataError(f"config.dataset: unknown dataset {config.dataset!r}; "
                    f"choose one of {sorted(LOADERS)}")
  return LOADERS[config.dataset](resolve_data_dir(config.get("data_dir")), config)


def _files_state(folder: pathlib.Path) -> list:
  """Name, size and modification time of every file under a dataset folder.

  Part of the cache key, so that adding, replacing or removing a source file
  (say the raw Tianchi log beside the substitute) builds a new split.
  """
  if not folder.is_dir():
    return []
  return sorted((str(p.relative_to(folder)), p.stat().st_size, int(p.stat().st_mtime))
                for p in folder.rglob("*") if p.is_file())


def _cache_key(config) -> str:
  data_dir = resolve_data_dir(config.get("data_dir")).resolve()
  folder = DATASET_FOLDERS.get(config.dataset)
  fields = {"version": CACHE_VERSION, "dataset": config.dataset,
            "split": config.split, "data_seed": config.data_seed,
            "data_dir": str(data_dir),
            "files": _files_state(data_dir / folder) if folder else []}
  for name in ("synthetic", "subset"):
    if name in config:
      fields[name] = config[name].to_dict()
  digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
  return f"{config.dataset}_{config.split}_{digest[:16]}"


def load_split(config, use_cache: bool = True) -> Split:
  """Loads config.dataset, splits it as config.split says, caches the result.

  The cache is an npz per (dataset, split, seed, data folder), written
  atomically, so an interrupted run never leaves a half-written split.
  """
  path = cache_dir() / (_cache_key(config) + ".npz")
  if use_cache and path.is_file():
    try:
      return Split.load(path)
    except Exception:  # pylint: disable=broad-except
      path.unlink(missing_ok=True)  # unreadable cache: rebuild it
  split = make_split(load_interactions(config), config.split, config.data_seed)
  if use_cache:
    split.save(path)
  return split

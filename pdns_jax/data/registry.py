"""Dataset name -> loader, and the one choice between a raw log and its substitute.

Each loader takes (data_dir, config) and returns an `Interactions`. This module
imports every loader and no loader imports it, so imports run one way.
"""

from __future__ import annotations

import pathlib
from typing import Callable

from pdns_jax.data.core import DataError, Interactions
from pdns_jax.data.douban import load as load_douban
from pdns_jax.data.gowalla import load as load_gowalla
from pdns_jax.data.movielens import load as load_movielens
from pdns_jax.data.sources import resolve_data_dir
from pdns_jax.data.substitutes import load as load_substitute
from pdns_jax.data.synthetic import load as load_synthetic
from pdns_jax.data.tianchi import find_raw, load_raw

Loader = Callable[[pathlib.Path, object], Interactions]


def _load_ml100k(data_dir, config):
  del config
  return load_movielens(data_dir)


def _load_synthetic(data_dir, config):
  del data_dir
  return load_synthetic(config)


def _load_douban(data_dir, config):
  del config
  return load_douban(data_dir)


def _load_gowalla(data_dir, config):
  del config
  return load_gowalla(data_dir)


def _tianchi_loader(dataset: str) -> Loader:
  """Taobao or Tmall: the raw Tianchi log where present, else the substitute."""
  def load(data_dir, config):
    path = find_raw(data_dir, dataset)
    if path is None:
      return load_substitute(data_dir, dataset, config)
    return load_raw(path, dataset, min_interactions=config.subset.min_interactions,
                    num_users=config.subset.num_users, seed=config.data_seed)
  return load


LOADERS: dict[str, Loader] = {
    "ml100k": _load_ml100k,
    "synthetic": _load_synthetic,
    "douban": _load_douban,
    "gowalla": _load_gowalla,
    "taobao": _tianchi_loader("taobao"),
    "tmall": _tianchi_loader("tmall"),
}


def load_interactions(config) -> Interactions:
  """Runs the registered loader for config.dataset.

  Args:
    config: reads dataset and data_dir, and what that dataset's loader reads.

  Raises:
    DataError: for an unknown dataset, or files that are absent or malformed.
  """
  if config.dataset not in LOADERS:
    raise DataError(f"config.dataset: unknown dataset {config.dataset!r}; "
                    f"choose one of {sorted(LOADERS)}")
  return LOADERS[config.dataset](resolve_data_dir(config.get("data_dir")), config)

"""Where dataset files live and how a user gets them.

Loaders import this module, never the package `__init__`, so imports inside
`pdns_jax.data` run one way: sources and core below, loaders above them, and
the registry in `__init__` on top.
"""

from __future__ import annotations

import os
import pathlib

from pdns_jax.data.core import DataError

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
  """Returns `path` if it is a file, else raises a DataError saying how to get it."""
  path = pathlib.Path(path)
  if path.is_file():
    return path
  if path.exists():
    raise DataError(f"{dataset}: {path} is not a regular file (a folder?); put the "
                    "data file itself there")
  how = HOW_TO_OBTAIN.get(dataset, "see README.md, section Datasets")
  raise DataError(
      f"{dataset}: data file {path} not found. To obtain it: {how}. Point "
      "--config.data_dir or the PDNS_DATA_DIR environment variable at the folder "
      "that holds the dataset folders (for example ../shared/data).")

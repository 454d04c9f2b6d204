"""Datasets: loaders -> `Interactions` -> the paper's split -> cached `Split`.

`load_split(config)` is the one entry point the trainer uses. Loaders are
registered by dataset name in `LOADERS` (registry.py); each takes (data_dir,
config) and returns an `Interactions`. Modules of this package import each
other one way, and none imports this file: it only gathers the public names.
"""

from __future__ import annotations

from pdns_jax.data.cache import load_split
from pdns_jax.data.core import (DataError, Interactions, Split, atomic_write,
                                make_split)
from pdns_jax.data.registry import LOADERS, load_interactions
from pdns_jax.data.sources import (DATASET_FOLDERS, HOW_TO_OBTAIN, cache_dir,
                                   require_file, resolve_data_dir)

__all__ = ["DataError", "Interactions", "Split", "LOADERS", "load_split",
           "load_interactions", "resolve_data_dir", "cache_dir", "require_file",
           "atomic_write", "make_split"]

"""Training over a device mesh (`config.mesh`): which array lives where.

`config.mesh = "data=N"` (N = -1: every local device) spreads one run over N
devices along a `data` axis: the embedding tables, their Adam moments and
per-user or per-item sampler tables are split by rows, each batch by
examples, and XLA inserts the collectives (the all-gathers of the sparse
product's input, the reductions of the gradients). The random draws do not
depend on the split (JAX's partitionable threefry), so 1, 2 or 8 devices
train the same run up to the order of float sums. The default "" is one
device, with today's programs unchanged.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from pdns_jax.config import ConfigError

AXIS = "data"


def make_mesh(text: str) -> Mesh | None:
  """The mesh `config.mesh` names, or None for "" (one device, no sharding)."""
  if not text:
    return None
  name, eq, size = text.partition("=")
  if name.strip() != AXIS or not eq:
    raise ConfigError(f"config.mesh: {text!r} is not 'data=N' (N devices, -1 for all)")
  try:
    size = int(size)
  except ValueError:
    raise ConfigError(f"config.mesh: {text!r}: N must be an integer") from None
  devices = jax.devices()
  if size == -1:
    size = len(devices)
  if not 1 <= size <= len(devices):
    raise ConfigError(f"config.mesh: data={size} needs {size} devices, but this process "
                      f"sees {len(devices)} ({jax.default_backend()}); use data=-1 for all")
  return Mesh(np.array(devices[:size]), (AXIS,))


def row_multiple(mesh: Mesh | None) -> int:
  """Tables are padded to a multiple of the device count so rows split evenly."""
  return 1 if mesh is None else mesh.size


def state_shardings(mesh: Mesh, state):
  """Per leaf of a replicated-axis state: rows split where they divide, else replicated.

  A leaf (replicas, rows, ...) whose rows divide by the device count (the
  padded embedding tables, their Adam moments, per-user sampler tables) is
  split by rows; scalars, keys and small tables are replicated.
  """
  def spec(leaf):
    if leaf.ndim >= 2 and leaf.shape[1] % mesh.size == 0 and leaf.shape[1] >= mesh.size:
      return NamedSharding(mesh, P(None, AXIS))
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map(spec, state)


def replicated(mesh: Mesh, tree):
  return jax.tree_util.tree_map(lambda _: NamedSharding(mesh, P()), tree)


def split_examples(mesh: Mesh | None, batch):
  """Constrains (batches, B) arrays to split each batch's B examples over devices."""
  if mesh is None:
    return batch
  def constrain(x):
    if x.shape[-1] % mesh.size:
      return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, AXIS)))
  return jax.tree_util.tree_map(constrain, batch)

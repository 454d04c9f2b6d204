"""Training over a device mesh (`config.mesh`): which array lives where.

`config.mesh = "data=N"` (N = -1: every local device) spreads one run over N
devices along a `data` axis: the embedding tables, their Adam moments,
per-user or per-item sampler tables and the training pairs are split by
rows, each batch by examples, and XLA inserts the collectives (the
all-gathers of the sparse product's input, the reductions of the gradients). The random draws do not
depend on the split (JAX's partitionable threefry), so 1, 2 or 8 devices
train the same run up to the order of float sums. The default "" is one
device, with today's programs unchanged. With several processes
(`distributed.py`) `jax.devices()` lists every process's devices and the mesh
spans them all.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from pdns_jax import graph as graph_lib
from pdns_jax.config import ConfigError

AXIS = "data"


def make_mesh(text: str) -> Mesh | None:
  """The mesh `config.mesh` names, or None for "" (one device, no sharding).

  With several processes (`config.distributed`) the mesh must span every
  process's devices, or some process would hold no part of the run.
  """
  # Asking for the process count starts JAX's backend: only where it joined others.
  processes = jax.process_count() if jax.distributed.is_initialized() else 1
  if not text:
    if processes > 1:
      raise ConfigError(f"config.mesh: {processes} processes need a mesh over all their "
                        f"devices; use --config.mesh=data=-1 (got {text!r})")
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
  if processes > 1 and size != len(devices):
    raise ConfigError(f"config.mesh: data={size} leaves out devices of the {processes} "
                      f"processes, which have {len(devices)} together; use data=-1 (all)")
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


def put_replicated(mesh: Mesh | None, tree):
  """Places host or one-device arrays whole on every device of the mesh, once.

  The run's read-only inputs (exclusion sets, evaluation sets): a jitted call
  would otherwise copy them to every device on each call, and with several
  processes each process contributes its own copy of the same values. None: the tree as it is.
  """
  if mesh is None:
    return tree
  return jax.device_put(tree, replicated(mesh, tree))


def put_rows(mesh: Mesh | None, array: np.ndarray) -> jax.Array:
  """A host array split by rows over the mesh, padded with zeros to a multiple of
  its devices; each process copies only the rows of its own devices.

  For the training pairs: an epoch gathers its batches from them by a global
  permutation, so the draws do not depend on the device count. None: the
  array whole on the default device.
  """
  if mesh is None:
    return jnp.asarray(array)
  rows = array.shape[0] + -array.shape[0] % mesh.size
  sharding = NamedSharding(mesh, P(AXIS))

  def rows_of(index):  # this device's slice of the padded array
    start, stop, _ = index[0].indices(rows)
    part = array[start:min(stop, array.shape[0])]
    return np.concatenate([part, np.zeros((stop - start - len(part),) + array.shape[1:],
                                          array.dtype)])
  return jax.make_array_from_callback((rows,) + array.shape[1:], sharding, rows_of)


def graph_blocks(mesh: Mesh, adjacency, num_users: int, num_items: int) -> dict:
  """LightGCN's adjacency for a mesh run: edges split by destination row block.

  Device d holds the edges into its rows of the padded node order and
  computes those rows of each layer (`graph.propagate_blocks`); the layer
  input is all-gathered by XLA. Any `config.propagation` gives this product
  on a mesh: repeating the whole product on every device would make each
  device do the work of all.
  """
  blocks = graph_lib.row_blocks(adjacency, num_users, num_items, mesh.size)
  return {"blocks": jax.device_put(blocks, NamedSharding(mesh, P(AXIS)))}


def split_examples(mesh: Mesh | None, batch):
  """Constrains (batches, B) arrays to split each batch's B examples over devices."""
  if mesh is None:
    return batch
  def constrain(x):
    if x.shape[-1] % mesh.size:
      return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, AXIS)))
  return jax.tree_util.tree_map(constrain, batch)

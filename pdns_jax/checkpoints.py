"""Orbax checkpoints of the whole train state (sampler state included) and the loop's bookkeeping.

Two managers under `<workdir>/checkpoints/`: `latest` (resumed from) and
`best` (the state of each replica at its best validation epoch), each keeping
its two newest steps. A step holds the state as orbax arrays and `meta`, the
loop's JSON bookkeeping (epoch, trackers, timing, reveal start) plus the
state's array shapes and a sha256 of its bytes. Restoring verifies that
digest; a step that orbax cannot read or whose bytes changed (a truncated
file, a deleted manifest, a flipped byte) is skipped for the next older one,
so one damaged file never makes a workdir unusable.

With several processes (`distributed.py`) every process takes part in each
save and restore: orbax writes each process's shards of the arrays into the
one shared folder and the JSON from process 0, with barriers in between.
"""

from __future__ import annotations

import hashlib
import pathlib

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from pdns_jax import distributed


class ShapeMismatch(ValueError):
  """The workdir's checkpoints hold arrays of other shapes than this run's."""


class Damaged(RuntimeError):
  """No intact checkpoint is left; the message names the folder and the way out."""


def _shapes(state) -> list:
  return [list(x.shape) + [str(x.dtype)] for x in jax.tree_util.tree_leaves(state)]


def digest(state) -> str:
  """sha256 over every leaf's shape, dtype and bytes (host copy, gathered from every process)."""
  h = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(distributed.to_host(state)):
    leaf = np.ascontiguousarray(leaf)
    h.update(f"{leaf.shape}{leaf.dtype}".encode())
    h.update(leaf.tobytes())
  return h.hexdigest()


class Checkpoints:
  """Latest and best states of a run, with its bookkeeping as JSON."""

  def __init__(self, workdir: pathlib.Path, to_saved=lambda s: s, from_saved=lambda s: s):
    """Opens (creating) the managers.

    Args:
      workdir: the run's folder.
      to_saved, from_saved: how the state is written and read back (the
        program drops a mesh's padding rows, so any device count restores).
    """
    self.to_saved, self.from_saved = to_saved, from_saved
    self.folder = workdir / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                           enable_async_checkpointing=False)
    self.latest = ocp.CheckpointManager(self.folder / "latest", options=options)
    self.best = ocp.CheckpointManager(self.folder / "best", options=options)

  def _save(self, manager, epoch, state, meta):
    state = self.to_saved(state)
    meta = dict(meta, shapes=_shapes(state), digest=digest(state))
    if epoch in manager.all_steps():
      # A run killed between saving "best" and "latest" redoes this epoch on
      # resume and reaches the same state: replace the older copy.
      manager.delete(epoch)
    manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    manager.wait_until_finished()

  def save(self, epoch: int, state, meta: dict, best_state=None) -> None:
    """Saves `state` as latest (and `best_state` as best, when given) at `epoch`."""
    if best_state is not None:
      self._save(self.best, epoch, best_state, meta)
    self._save(self.latest, epoch, state, meta)

  def _read(self, manager, step: int, like):
    """(state, meta) of one step, verified; raises on damage or other shapes."""
    like = self.to_saved(like)
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if meta.get("shapes") != _shapes(like):
      raise ShapeMismatch("its array shapes differ from this config's")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    state = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract))).state
    if meta.get("digest") is not None and digest(state) != meta["digest"]:
      raise ValueError("its arrays do not match the digest saved with them")
    return self.from_saved(state), meta

  def _newest_intact(self, manager, like, at_most=None):
    """(step, state, meta) of the newest readable step (<= at_most), or None."""
    for step in sorted(manager.all_steps(), reverse=True):
      if at_most is not None and step > at_most:
        continue
      try:
        state, meta = self._read(manager, step, like)
      except ShapeMismatch:
        raise
      except Exception as e:  # pylint: disable=broad-except
        # orbax and TensorStore raise many types for a damaged step.
        logging.warning("checkpoint %s/%d is damaged (%s: %s); trying an older one",
                        manager.directory, step, type(e).__name__, str(e)[:200])
        continue
      return step, state, meta
    return None

  def restore(self, like):
    """(state, best_state, meta) from the newest intact latest step, or None if none was saved.

    The best state is the newest intact best step not after that one; where
    none is left, the latest state stands in (the summary comes from `meta`,
    which the latest step carries, so it is unaffected).

    Raises:
      ShapeMismatch: the checkpoints hold arrays of other shapes than `like`
        (checked from the JSON part first, so orbax is never asked to restore
        into mismatched arrays).
      Damaged: steps were saved but none of them can be read back.
    """
    if not self.latest.all_steps():
      return None
    found = self._newest_intact(self.latest, like)
    if found is None:
      raise Damaged(f"every checkpoint in {self.folder / 'latest'} is damaged; delete "
                    f"{self.folder} and metrics.jsonl to start this run afresh, or use "
                    "a new --workdir")
    step, state, meta = found
    best = self._newest_intact(self.best, like, at_most=step)
    return state, (best[1] if best else state), meta

  def best_params(self, like):
    """The newest intact best state (for serving), else the latest; None if neither."""
    found = self._newest_intact(self.best, like) or self._newest_intact(self.latest, like)
    return None if found is None else found[1]


def read_params(workdir: pathlib.Path) -> dict:
  """The layer-0 embeddings of another run's best (else latest) checkpoint, as saved.

  Used by `config.init_from`: the other run may have trained with another
  sampler (another state structure), so the state is read as saved and only
  its `params` are kept: {"user": (replicas, rows, F), "item": ...} numpy.

  Raises:
    Damaged: the run has no readable checkpoint.
  """
  for which in ("best", "latest"):
    manager = ocp.CheckpointManager(workdir / "checkpoints" / which)
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        state = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore())).state
        return {k: np.asarray(v) for k, v in state["params"].items()}
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("cannot read %s/%d (%s); trying an older one", manager.directory,
                        step, e)
  raise Damaged(f"{workdir / 'checkpoints'} holds no readable checkpoint")

"""Orbax checkpoints of the whole train state (sampler state included) and the loop's bookkeeping.

Two managers under `<workdir>/checkpoints/`: `latest` (resumed from) and
`best` (the state of each replica at its best validation epoch). Each step
holds the state as orbax arrays and `meta`, the loop's JSON bookkeeping
(epoch, trackers, timing, reveal start) plus the state's array shapes.
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


def _shapes(state) -> list:
  return [list(x.shape) + [str(x.dtype)] for x in jax.tree_util.tree_leaves(state)]


class ShapeMismatch(ValueError):
  """The workdir's checkpoints hold arrays of other shapes than this run's."""


class Checkpoints:
  """Latest and best states of a run, with its bookkeeping as JSON."""

  def __init__(self, workdir: pathlib.Path):
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                           enable_async_checkpointing=False)
    self.latest = ocp.CheckpointManager(workdir / "checkpoints" / "latest", options=options)
    self.best = ocp.CheckpointManager(workdir / "checkpoints" / "best", options=options)

  def _save(self, manager, epoch, state, meta):
    meta = dict(meta, shapes=_shapes(state))
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

  def restore(self, like):
    """(state, best_state, meta) from the latest checkpoint, or None if there is none.

    Raises:
      ShapeMismatch: the checkpoint holds arrays of other shapes than `like`
        (checked from the JSON part first, so orbax is never asked to restore
        into mismatched arrays).
    """
    step = self.latest.latest_step()
    if step is None:
      return None
    meta = self.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if meta.get("shapes") != _shapes(like):
      raise ShapeMismatch("its array shapes differ from this config's")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    args = lambda: ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                      meta=ocp.args.JsonRestore())
    restored = self.latest.restore(step, args=args())
    best_step = self.best.latest_step()
    best_state = (self.best.restore(best_step, args=args()).state
                  if best_step is not None else restored.state)
    return restored.state, best_state, restored.meta

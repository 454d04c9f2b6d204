"""Trusting a workdir: one run at a time, and no silent mix of two configurations.

`claim(workdir)` takes an exclusive OS lock (`fcntl.flock` on
`<workdir>/.lock`, released by the kernel when the process ends, so a kill -9
never leaves a stale lock); a second run on the same workdir fails at once,
naming the holder's pid. `resume_changes(stored, new)` compares the config a
workdir was trained with against the one about to resume it, field by field.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib

from pdns_jax.config import ConfigError

# Fields that may change when a run resumes: they decide how long it trains,
# how often it evaluates and saves, and what it prints, not what one epoch
# computes. eval_batch_size and eval_item_chunk only regroup what one
# evaluation scores; mesh and distributed only spread the same computation
# over devices and processes.
RESUMABLE = ("num_epochs", "patience", "eval_every", "checkpoint_every", "progress",
             "tensorboard", "eval_batch_size", "eval_item_chunk", "mesh", "resume_changes",
             "distributed.coordinator_address", "distributed.num_processes",
             "distributed.process_id", "distributed.timeout_s")


def check_path(workdir: pathlib.Path) -> None:
  """Fails early (before any compute) for a workdir that can never hold a run."""
  if workdir.exists() and not workdir.is_dir():
    raise ConfigError(f"--workdir {workdir}: is a file, not a folder; choose a folder")


def claim(workdir: pathlib.Path):
  """Creates `workdir` if needed and locks it for this process.

  Returns:
    The open lock file; keep it referenced for as long as the run goes on.

  Raises:
    ConfigError: the workdir is a file, cannot be written, or another live
      process holds it.
  """
  check_path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    handle = open(workdir / ".lock", "a+")  # pylint: disable=consider-using-with
  except OSError as e:
    raise ConfigError(f"--workdir {workdir}: cannot write there ({e.strerror or e}); "
                      "choose a folder you can write to") from None
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    handle.seek(0)
    holder = handle.read().strip() or "unknown"
    handle.close()
    raise ConfigError(f"--workdir {workdir}: in use by another run (pid {holder}); wait "
                      "for it to finish, or use another --workdir") from None
  handle.seek(0)
  handle.truncate()
  handle.write(str(os.getpid()))
  handle.flush()
  return handle


def _flatten(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def resume_changes(stored: dict, new: dict, allowed: str, defaults: dict) -> dict:
  """The fields that differ between a workdir's config and the resuming one.

  Args:
    stored: the workdir's config.json.
    new: the config about to resume it (as JSON).
    allowed: `config.resume_changes`, "field,field": changes the user asks for.
    defaults: configs/default.py as JSON. A field the workdir's config lacks
      (added to the project after that run) counts as unchanged while it holds
      its default, which is what the older code did.

  Returns:
    {field: [stored value, new value]} of the differing fields beyond RESUMABLE
    (all of them allowed).

  Raises:
    ConfigError: a field differs that is neither RESUMABLE nor allowed; the
      message names each with both values and the ways out.
  """
  wanted = {f.strip() for f in allowed.split(",") if f.strip()}
  before, after = _flatten(stored), _flatten(new)
  for field, value in _flatten(defaults).items():
    before.setdefault(field, value)
  changed = {f: [before.get(f), after.get(f)] for f in sorted(set(before) | set(after))
             if before.get(f) != after.get(f) and f not in RESUMABLE}
  refused = {f: v for f, v in changed.items() if f not in wanted}
  if refused:
    listed = "; ".join(f"{f}: {json.dumps(a)} in the workdir, {json.dumps(b)} now"
                       for f, (a, b) in refused.items())
    raise ConfigError(
        f"config differs from the one this workdir was trained with ({listed}). Resuming "
        "would mix two runs: use a new --workdir, or allow the change explicitly with "
        f"--config.resume_changes={','.join(refused)} (recorded in metrics.jsonl and "
        "config.json)")
  return changed

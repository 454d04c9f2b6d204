"""What a run writes and prints: metrics.jsonl, TensorBoard, console lines, JSON files.

metrics.jsonl holds one line per evaluation and replica. Lines are appended
whole and fsynced, so a killed run never leaves half a line; on resume the
lines of epochs after the restored checkpoint (which will be redone) and a
partial last line from an older writer are dropped.
"""

from __future__ import annotations

import json
import os
import pathlib

from absl import logging

from pdns_jax.data import atomic_write


def write_json(path: pathlib.Path, obj) -> None:
  """Writes `obj` as indented JSON, atomically."""
  atomic_write(path, lambda f: f.write(
      (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def read_jsonl(path: pathlib.Path) -> list[dict]:
  """The whole lines of a metrics.jsonl; a partial (cut) last line is skipped."""
  if not path.exists():
    return []
  lines = []
  for text in path.read_text().splitlines():
    try:
      lines.append(json.loads(text))
    except json.JSONDecodeError:
      continue  # only a killed writer's last line can be cut
  return lines


class Reporter:
  """Writes a run's evaluation lines to metrics.jsonl, TensorBoard and the console."""

  def __init__(self, workdir: pathlib.Path, *, last_epoch: int, tensorboard: bool,
               progress_bar=None, replicas: int = 1, writes: bool = True):
    """Opens the outputs; drops metrics lines after `last_epoch` (they are redone).

    With writes=False (the processes of a multi-process run other than
    process 0) nothing is written or shown.
    """
    self.path = workdir / "metrics.jsonl"
    self.writes = writes
    self.bar = progress_bar
    self.replicas = replicas
    self.writer = None
    if not writes:
      return
    keep = [l for l in read_jsonl(self.path) if l.get("epoch", 0) <= last_epoch]
    atomic_write(self.path, lambda f: f.write("".join(json.dumps(l) + "\n"
                                                      for l in keep).encode()))
    if tensorboard:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self.writer = tensorboardX.SummaryWriter(str(workdir / "tensorboard"))

  def _append(self, lines: list[dict]) -> None:
    if not self.writes:
      return
    with open(self.path, "a") as f:
      f.write("".join(json.dumps(l) + "\n" for l in lines))
      f.flush()
      os.fsync(f.fileno())

  def record_event(self, line: dict) -> None:
    """Appends a line that is not an evaluation (it carries an "event" key)."""
    self._append([line])

  def record(self, lines: list[dict]) -> None:
    """Appends one evaluation's lines (one per replica) and shows them."""
    self._append(lines)
    for line in lines if self.writes else ():
      self._scalars(line)
      self._console(line)

  def _console(self, line: dict) -> None:
    """One readable line per evaluation, above the progress bar when there is one."""
    def group(prefix):
      return " ".join(f"{k[len(prefix):]} {v:.4f}" for k, v in sorted(line.items())
                      if k.startswith(prefix))
    text = (f"epoch {line['epoch']}: loss {line['loss']:.4f} | valid {group('valid/')} | "
            f"test {group('test/')}")
    if "fn_hit_rate" in line:
      text += f" | fn_hit_rate {line['fn_hit_rate']:.4f} revealed {line['revealed']:.1f}"
    if "replica" in line:
      text = f"replica {line['replica']} " + text
    if self.bar is not None:
      self.bar.write(text)
    else:
      logging.info("%s", text)

  def _scalars(self, line: dict) -> None:
    if self.writer is None:
      return
    prefix = f"replica_{line['replica']}/" if "replica" in line else ""
    for name, value in line.items():
      if name not in ("epoch", "replica"):
        self.writer.add_scalar(prefix + name.replace("@", "_at_"), value, line["epoch"])

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()


def summary_of(replicas: list[dict], timing: dict) -> dict:
  """The summary.json of a run: one shape for every run.

  Args:
    replicas: per replica {"hparams", "best_epoch", valid and test metrics}.
    timing: train_seconds, seconds_per_epoch, epochs_run, data.

  Returns:
    {"replicas": [...], **timing}; with one replica its keys are also at the
    top level, as plain runs have always written them.
  """
  summary = {"replicas": replicas, **timing}
  if len(replicas) == 1:
    summary.update({k: v for k, v in replicas[0].items() if k != "hparams"})
  return summary

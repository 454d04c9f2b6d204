"""The false-negative simulation (PAPER.md 8.3): when which FN pairs leave the pool.

On the 4:1:1 split, a share c = config.reveal_fraction of the FN set is
revealed to the sampler (revealed pairs are excluded like training
positives) in 20% subsets, one every `reveal_every` epochs, starting at
`reveal_start`. The paper starts "once validation Recall@50 has peaked";
`reveal_start = -1` asks for that automatic start, decided by `has_peaked`.

The schedule is immutable; the automatic start, once found, lives in the
loop's checkpointed bookkeeping and is passed in.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pdns_jax.config import ConfigError

REVEAL_STEP = 0.2  # the FN set is revealed in 20% subsets
# Evaluations in a row without a better validation metric after which the
# metric counts as having peaked: one could be noise, two in a row rarely are.
PEAK_EVALS = 2


def has_peaked(evals_since_best: int) -> bool:
  """The automatic reveal start: validation has not improved for PEAK_EVALS evaluations."""
  return evals_since_best >= PEAK_EVALS


def check_fraction(fraction: float) -> None:
  """Only whole 20% stages can be revealed; anything else is refused, not rounded."""
  stages = fraction / REVEAL_STEP
  if not 0 <= fraction <= 1 or abs(stages - round(stages)) > 1e-9:
    raise ConfigError(f"config.reveal_fraction: must be one of 0, 0.2, 0.4, 0.6, 0.8, 1 "
                      f"(the FN set is revealed in {REVEAL_STEP:.0%} subsets; got "
                      f"{fraction!r})")


@dataclasses.dataclass(frozen=True)
class RevealSchedule:
  """Which FN pairs are revealed at which epoch.

  Attributes:
    order: the FN pairs in the (seeded) order they are revealed.
    stages: how many 20% subsets are revealed in the end (c / 0.2).
    every: epochs between two reveals.
  """

  order: np.ndarray
  stages: int
  every: int

  @classmethod
  def from_config(cls, config, fn_pairs: np.ndarray) -> "RevealSchedule":
    check_fraction(config.reveal_fraction)
    rng = np.random.default_rng(config.data_seed + 1)
    order = fn_pairs[rng.permutation(len(fn_pairs))] if len(fn_pairs) else fn_pairs
    return cls(order=order, stages=int(round(config.reveal_fraction / REVEAL_STEP)),
               every=int(config.reveal_every))

  def stage_at(self, epoch: int, start: int) -> int:
    """Subsets revealed after `epoch` epochs, with the first reveal at `start` (-1: not yet)."""
    if self.stages == 0 or start < 0 or epoch < start:
      return 0
    return min(self.stages, 1 + (epoch - start) // self.every)

  def revealed(self, stage: int) -> np.ndarray:
    """The FN pairs revealed at `stage`."""
    return self.order[:int(round(stage * REVEAL_STEP * len(self.order)))]

  def share(self, stage: int) -> float:
    """The revealed share of the FN set at `stage`, as logged."""
    return stage * REVEAL_STEP if self.stages else 0.0

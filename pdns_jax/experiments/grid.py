"""Plans a grid of runs: axes x seeds -> one `PlannedRun` per call of the trainer.

A grid is a list of (config field, values) axes crossed with seeds, written
"field=v1,v2;field2=v3" (the syntax of `config.replica_sweep`, parsed by the
same `config.parse_axes`). Points that differ only in fields a replica may vary
(seed, beta, alpha, l2, learning_rate) become one vmapped replica run
(`config.num_replicas` x `config.replica_sweep`), which costs about as much as
one run; every other combination gets its own run.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Iterable, Sequence

from pdns_jax import config as config_lib
from pdns_jax.config import ConfigError

VMAP_MODES = ("auto", "yes", "no")

Axis = tuple[str, list]  # (config field, typed values), e.g. ("beta", [0.05, 0.1])


@dataclasses.dataclass(frozen=True)
class PlannedRun:
  """One call of train_and_evaluate: its folder name, its config and its replicas.

  Attributes:
    name: folder name under the runs directory.
    overrides: (field, value) pairs applied to the base config.
    settings: per replica, in the trainer's replica order: the grid's fields
      (in the grid's order) and the seed.
  """

  name: str
  overrides: tuple
  settings: tuple

  def config(self, base):
    """The config this run trains: `base` with the run's overrides."""
    return config_lib.with_overrides(base, self.overrides)


def parse_grid(text: str, config) -> list[Axis]:
  """Parses --grid text into axes whose values have their field's type in `config`.

  Args:
    text: "beta=0.05,0.1;pool_size=16,32" (dotted names for nested fields).
    config: the base config (field names and types).

  Raises:
    ConfigError: malformed text, an unknown field or a bad value; seeds and
      the replica fields the sweep sets itself are refused as axes.
  """
  axes = []
  for field, values in config_lib.parse_axes(text, what="--grid"):
    if field == "seed":
      raise ConfigError("--grid: vary seeds with --seeds (seeds config.seed, "
                        "config.seed+1, ...), not in the grid")
    if field in ("num_replicas", "replica_sweep"):
      raise ConfigError(f"--grid: {field} is set by the sweep itself; use --seeds and "
                        "grid axes instead")
    axes.append((field, [config_lib.field_value(config, field, v) for v in values]))
  return axes


def format_value(value) -> str:
  """A value as run names and tables write it (floats in %g: 0.05, 1e-04)."""
  return f"{value:g}" if isinstance(value, float) else str(value)


def _name(parts: Iterable[tuple[str, str]]) -> str:
  return ",".join(f"{field}={text}" for field, text in parts)


def plan_runs(config, axes: Sequence[Axis], seeds: int = 1,
              vmap: str = "auto") -> list[PlannedRun]:
  """Expands axes x seeds into runs, grouping replica-only variation into one run.

  Args:
    config: the base config (its seed is the first seed).
    axes: typed grid axes, see `parse_grid`.
    seeds: how many seeds per grid point (config.seed, config.seed + 1, ...).
    vmap: "auto" groups the points of each combination of the other fields into
      one replica run where the trainer allows it; "yes" insists (raises where it
      cannot); "no" trains every point and seed on its own.

  Returns:
    The runs, in grid order.

  Raises:
    ConfigError: a bad --vmap or --seeds, or replicas preset in the config.
  """
  if vmap not in VMAP_MODES:
    raise ConfigError(f"--vmap: must be one of {VMAP_MODES} (got {vmap!r})")
  if seeds < 1:
    raise ConfigError(f"--seeds: must be >= 1 (got {seeds})")
  if config.num_replicas != 1 or config.replica_sweep:
    raise ConfigError("config.num_replicas/replica_sweep: leave them at 1/'' and use "
                      "--seeds and --grid; the sweep sets them")
  replica_axes = [a for a in axes if a[0] in config_lib.REPLICA_FIELDS]
  other_axes = [a for a in axes if a[0] not in config_lib.REPLICA_FIELDS]
  order = [field for field, _ in axes] + ["seed"]
  runs = []
  for combo in itertools.product(*(values for _, values in other_axes)):
    fixed = list(zip((field for field, _ in other_axes), combo))
    group_config = config_lib.with_overrides(config, fixed)
    replicas = seeds * math.prod(len(values) for _, values in replica_axes)
    # The automatic reveal start follows one run's validation peak, so runs
    # that reveal false negatives that way cannot share a program.
    auto_reveal = group_config.reveal_fraction > 0 and group_config.reveal_start < 0
    if vmap == "yes" and replicas > 1 and auto_reveal:
      raise ConfigError("--vmap=yes: runs with reveal_fraction > 0 need an explicit "
                        "config.reveal_start to train as replicas")
    if vmap != "no" and replicas > 1 and not auto_reveal:
      runs.append(_replica_run(group_config, fixed, replica_axes, seeds))
      continue
    for point in itertools.product(*(values for _, values in replica_axes)):
      varied = fixed + list(zip((field for field, _ in replica_axes), point))
      for r in range(seeds):
        seed = int(config.seed) + r
        overrides = tuple(varied) + (("seed", seed),)
        runs.append(PlannedRun(name=_name([(f, format_value(v)) for f, v in overrides]),
                               overrides=overrides, settings=(dict(varied, seed=seed),)))
  # Rows list the varied fields in the grid's order, whatever the grouping.
  return [dataclasses.replace(run, settings=tuple({f: s[f] for f in order}
                                                  for s in run.settings))
          for run in runs]


def _replica_run(config, fixed: list, replica_axes: Sequence[Axis],
                 seeds: int) -> PlannedRun:
  sweep = ";".join(f"{field}={','.join(repr(float(v)) for v in values)}"
                   for field, values in replica_axes)
  overrides = tuple(fixed) + (("num_replicas", seeds), ("replica_sweep", sweep))
  first = int(config.seed)
  seed_text = f"seed={first}" if seeds == 1 else f"seeds={first}-{first + seeds - 1}"
  name = _name([(f, format_value(v)) for f, v in fixed] +
               [(f, "+".join(format_value(v) for v in values))
                for f, values in replica_axes]) + ("," if fixed or replica_axes else "")
  replicas = config_lib.replica_settings(config_lib.with_overrides(config, overrides))
  settings = tuple(dict(fixed, **{f: s[f] for f, _ in replica_axes}, seed=s["seed"])
                   for s in replicas)
  return PlannedRun(name=name + seed_text, overrides=overrides, settings=settings)

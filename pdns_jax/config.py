"""Config plumbing shared by every entry point: errors, grids, replicas, overrides.

The first stage of the pipeline: it imports nothing from pdns_jax. Field
*values* are checked by the stages that own them (see `train.check_config`);
this module only reads and writes configs.

Replicas: several runs that differ only in seed and a few float fields train
as one vmapped program (`config.num_replicas` seeds crossed with
`config.replica_sweep`, e.g. "beta=0.05,0.1;l2=0.001,0.01"). The grids of
`launch/sweep.py` are written in the same "field=v1,v2;field=..." syntax and
parsed by the same `parse_axes`.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Iterable

from absl import flags
from ml_collections.config_flags import config_path
from ml_collections.config_flags import tuple_parser

# Fields a replica may vary; everything else is shared by all replicas. The
# dotted ones are the samplers' float knobs that a step or refresh reads as a
# traced scalar (`samplers.base.knob`); integer and shape knobs (srns.memory,
# adasir.proposals, ...) fix array shapes or loop counts and cannot vary.
REPLICA_FIELDS = ("seed", "beta", "alpha", "l2", "learning_rate",
                  "srns.alpha", "srns.tau", "gdns.decay", "gdns.gamma",
                  "irgan.temperature", "irgan.learning_rate", "irgan.l2",
                  "advir.eps", "advir.adv_weight")
# The replica fields the step reads from its per-replica `hparams` (the seed
# and learning rate live in the train state).
HPARAM_FIELDS = tuple(f for f in REPLICA_FIELDS if f not in ("seed", "learning_rate"))
_BASE_FIELDS = REPLICA_FIELDS[:5]
# How ml_collections' config_flags parses `--config.field=text`, by the field's
# type; grid values (also text) are parsed the same way, so a value means the
# same on the command line and in a grid.
_TEXT_PARSERS = {bool: flags.BooleanParser(), int: flags.IntegerParser(),
                 float: flags.FloatParser(), tuple: tuple_parser.TupleParser()}


class ConfigError(ValueError):
  """An impossible or unknown config value; the message names the field."""


def parse_axes(text: str, *, what: str) -> list[tuple[str, list[str]]]:
  """Parses "field=v1,v2;field2=v3" into [(field, [value strings])].

  Args:
    text: the axes; blank parts are ignored, so "" gives [].
    what: the flag or field the text came from, named in errors
      (e.g. "config.replica_sweep", "--grid").

  Raises:
    ConfigError: a part without "=" or values, or a field given twice.
  """
  axes = []
  for part in filter(None, (p.strip() for p in text.split(";"))):
    field, eq, values = part.partition("=")
    field = field.strip()
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not eq or not field or not items:
      raise ConfigError(f"{what}: {part!r} is not 'field=v1,v2,...'")
    if field in (name for name, _ in axes):
      raise ConfigError(f"{what}: field {field!r} appears twice")
    axes.append((field, items))
  return axes


def replica_settings(config, check: Callable[[Any], None] | None = None) -> list[dict]:
  """Expands num_replicas (seeds) x replica_sweep into one dict per replica.

  The order is the trainer's: sweep values outer (first axis slowest), seeds
  inner, so replica r has seed config.seed + r % num_replicas. Each dict holds
  seed, beta, alpha, l2, learning_rate and the swept sampler knobs ("srns.alpha").

  Args:
    config: the run's config.
    check: optional; called with the config as each replica's swept sampler
      knobs set (the samplers' own checks), raising `ConfigError` for an
      impossible value.

  Raises:
    ConfigError: a swept field that a replica cannot vary, a non-numeric or
      impossible value.
  """
  axes = {}
  for name, values in parse_axes(config.replica_sweep, what="config.replica_sweep"):
    if name not in REPLICA_FIELDS[1:]:
      raise ConfigError(_not_a_replica_field(config, name))
    try:
      axes[name] = [float(v) for v in values]
    except ValueError:
      raise ConfigError(f"config.replica_sweep: {name}={','.join(values)} has a "
                        "non-numeric value") from None
  base = {name: config[name] for name in _BASE_FIELDS}
  settings = []
  for combo in itertools.product(*axes.values()):
    for r in range(config.num_replicas):
      setting = dict(base, **dict(zip(axes, combo)))
      setting["seed"] = int(config.seed) + r
      settings.append(setting)
  for s in settings:
    if s["beta"] <= 0 or not 0 <= s["alpha"] <= 1 or s["l2"] < 0 or s["learning_rate"] <= 0:
      raise ConfigError(f"config.replica_sweep: impossible value in {s}")
  knobs = [name for name in axes if "." in name]
  if check is not None and knobs:
    for combo in itertools.product(*(axes[name] for name in knobs)):
      try:
        check(with_overrides(config, zip(knobs, combo)))
      except ConfigError as e:
        raise ConfigError(f"config.replica_sweep: {e}") from None
  return settings


def _not_a_replica_field(config, name: str) -> str:
  """Why `name` cannot be a replica_sweep axis, naming it."""
  allowed = f"use one of {REPLICA_FIELDS[1:]} (seeds: config.num_replicas)"
  try:
    kind = config_path.get_type(name, config)
  except (AttributeError, KeyError):
    return f"config.replica_sweep: {name!r} is no config field; {allowed}"
  if kind is float:
    return (f"config.replica_sweep: {name!r} cannot vary between replicas (no step or "
            f"refresh reads it per replica); {allowed}")
  return (f"config.replica_sweep: {name!r} ({kind.__name__}) cannot vary between replicas: "
          "it fixes shapes or loop counts, which every replica shares; vary it between "
          f"runs (launch/sweep.py --grid), or {allowed}")


def replica_value(config, setting: dict, name: str) -> float:
  """A replica's value of a replica field: swept (in `setting`) or the config's."""
  return setting[name] if name in setting else config_path.get_value(name, config)


def field_value(config, field: str, value: Any) -> Any:
  """`value` as `config.<field>` would hold it once set (see `with_overrides`).

  Args:
    config: the config whose field's type decides.
    field: a dotted field name, e.g. "synthetic.num_users".
    value: a typed value, or text (parsed to the field's type as
      `--config.field=text` would be).

  Raises:
    ConfigError: an unknown field, or a value of the wrong type.
  """
  try:
    kind = config_path.get_type(field, config)
  except (AttributeError, KeyError):
    raise ConfigError(f"config.{field}: no such config field") from None
  if isinstance(value, str) and kind in _TEXT_PARSERS:
    try:
      value = _TEXT_PARSERS[kind].parse(value)
    except (TypeError, ValueError):
      raise ConfigError(f"config.{field}: {value!r} is not a valid "
                        f"{kind.__name__}") from None
  # ConfigDict's typed assignment on a scratch copy: an int into a float field
  # becomes a float, text into a number field is refused.
  scratch = copy.deepcopy(config)
  try:
    config_path.set_value(field, scratch, value)
  except TypeError:
    raise ConfigError(f"config.{field}: {value!r} is not a valid "
                      f"{kind.__name__}") from None
  return config_path.get_value(field, scratch)


def with_overrides(config, overrides: Iterable[tuple[str, Any]]):
  """A copy of `config` with each (dotted field, value) set, in order.

  The one way code changes config fields by name (grids, paper experiments);
  values are typed as `field_value` says, so they follow ml_collections'
  rules for `--config.field=value`.

  Raises:
    ConfigError: an unknown field or a bad value, naming `config.<field>`.
  """
  config = copy.deepcopy(config)
  for field, value in overrides:
    config_path.set_value(field, config, field_value(config, field, value))
  return config

"""Results of many runs: runs.csv, mean ± std over seeds, model selection, markdown.

Rows are the dicts `runner.run_planned` returns (one per run and replica).
The best setting is always chosen by a validation metric, never a test one.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
from typing import Callable, Sequence

import numpy as np

from pdns_jax.config import ConfigError
from pdns_jax.experiments.grid import format_value

TEST_METRICS = ("test/recall@20", "test/ndcg@20", "test/recall@50", "test/ndcg@50")


def write_csv(rows: Sequence[dict], path: str | pathlib.Path) -> None:
  """Writes rows (dicts) to CSV; columns in the order they first appear."""
  columns = list(dict.fromkeys(k for row in rows for k in row))
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


def read_csv(path: str | pathlib.Path) -> list[dict]:
  """Reads runs.csv back; numbers become floats."""
  def value(text):
    try:
      return float(text)
    except ValueError:
      return text
  with open(path, newline="") as f:
    return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def select_key(rows: Sequence[dict]) -> str:
  """The validation metric runs are selected by (valid/recall@<largest K>)."""
  keys = [k for k in rows[0] if k.startswith("valid/recall@")]
  if not keys:
    raise ConfigError("rows have no valid/recall@K column to select by")
  return max(keys, key=lambda k: int(k.rsplit("@", 1)[1]))


@dataclasses.dataclass(frozen=True)
class Setting:
  """One grid point's results over seeds: mean and standard deviation per metric."""

  values: dict  # the varied fields
  seeds: int
  mean: dict
  std: dict


def aggregate(rows: Sequence[dict], fields: Sequence[str]) -> list[Setting]:
  """Groups rows by `fields` (in first-seen order); mean and std over seeds.

  The standard deviation is the sample one (ddof=1); 0 with one seed.
  """
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    groups.setdefault(tuple(row[f] for f in fields), []).append(row)
  metrics = [k for k in rows[0] if k.startswith(("valid/", "test/"))] + [
      "best_epoch", "seconds"]
  out = []
  for key, members in groups.items():
    table = {m: np.array([float(r[m]) for r in members]) for m in metrics}
    out.append(Setting(
        values=dict(zip(fields, key)), seeds=len(members),
        mean={m: float(v.mean()) for m, v in table.items()},
        std={m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in table.items()}))
  return out


def best_setting(settings: Sequence[Setting], key: str) -> int:
  """Index of the setting with the best mean `key` (a validation metric, never test)."""
  if not key.startswith("valid/"):
    raise ValueError(f"model selection must use a validation metric, not {key!r}")
  return int(np.argmax([s.mean[key] for s in settings]))


def mean_std(setting: Setting, metric: str, digits: int = 4) -> str:
  """`mean ± std` of a metric (just the mean for one seed)."""
  text = f"{setting.mean[metric]:.{digits}f}"
  return text + (f" ± {setting.std[metric]:.{digits}f}" if setting.seeds > 1 else "")


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
  """A GitHub markdown table."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
  return "\n".join(lines) + "\n"


def values_text(values: dict) -> str:
  """A setting's field values as `field=value, ...` ("(base)" when none vary)."""
  return ", ".join(f"{f}={format_value(v)}" for f, v in values.items()) or "(base)"


def settings_table(settings: Sequence[Setting], key: str,
                   label: Callable[[dict], str] = values_text,
                   extra: Sequence[tuple[str, Callable[[Setting], str]]] = ()) -> str:
  """Markdown: one row per setting, mean ± std over seeds; the best by `key` in bold.

  Args:
    settings: aggregated results.
    key: the validation metric that picks the best setting.
    label: how a setting's values are written.
    extra: more (column title, cell function) pairs, e.g. peak/final Recall.
  """
  best = best_setting(settings, key)
  metrics = [key] + [m for m in TEST_METRICS if m in settings[0].mean]
  header = ["setting", "seeds", "best epoch", *metrics, "seconds", *(t for t, _ in extra)]
  body = []
  for index, s in enumerate(settings):
    mark = lambda text: f"**{text}**" if index == best else text
    body.append([mark(label(s.values)) + (" (best)" if index == best else ""),
                 s.seeds, f"{s.mean['best_epoch']:.0f}",
                 *(mark(mean_std(s, m)) for m in metrics),
                 f"{s.mean['seconds']:.0f}", *(cell(s) for _, cell in extra)])
  return markdown_table(header, body)


def aggregate_markdown(rows: Sequence[dict], fields: Sequence[str], title: str) -> str:
  """The aggregate.md of a sweep: table over settings and the selected one."""
  key = select_key(rows)
  settings = aggregate(rows, fields)
  best = settings[best_setting(settings, key)]
  return (f"# {title}\n\n"
          f"Mean ± standard deviation over seeds; test metrics are taken at each run's "
          f"best validation epoch. The best setting (bold) is chosen by mean {key}, "
          f"never by a test metric.\n\n"
          + settings_table(settings, key) +
          f"\nBest setting by {key}: {values_text(best.values)} "
          f"(test/recall@50 {mean_std(best, 'test/recall@50')}).\n")

"""The comparison table (the paper's Table 2 layout): cells chosen by validation.

Rows are samplers, column groups datasets; a hyper-parameter search may vary
more fields, and each cell keeps the setting with the best mean validation
Recall@50, never chosen by a test metric.
"""

from __future__ import annotations

from typing import Sequence

from pdns_jax import plot
from pdns_jax.experiments import tables
from pdns_jax.experiments.labels import SYMBOLS, setting_text, settings_text, value_text


def best_cells(rows: Sequence[dict], row_field: str, column_field: str) -> dict:
  """{(row value, column value): the Setting with the best mean validation metric}.

  Rows may vary more fields than the two (a hyper-parameter search); each
  cell keeps the setting chosen by validation, never by test.
  """
  key = tables.select_key(rows)
  searched = [f for f in dict.fromkeys(f for row in rows for f in row)
              if f not in (row_field, column_field, "seed", "run", "best_epoch",
                           "epochs_run", "seconds") and not f.startswith(("valid/", "test/"))]
  # A field searched for one sampler only (beta) is "-" in the others' rows.
  rows = [{f: "-" for f in searched} | row for row in rows]
  cells: dict = {}
  for s in tables.aggregate(rows, [row_field, column_field] + searched):
    cell = (s.values[row_field], s.values[column_field])
    if cell not in cells or s.mean[key] > cells[cell].mean[key]:
      cells[cell] = s
  return cells


def chosen_settings(rows: Sequence[dict], row_field: str, column_field: str) -> str:
  """Markdown: per cell, the setting validation chose and the seconds it trained."""
  body = [[value_text(row_field, r), value_text(column_field, c),
           settings_text({f: v for f, v in s.values.items()
                          if f not in (row_field, column_field) and v != "-"}) or "-",
           f"{s.mean['best_epoch']:.0f}", f"{s.mean['seconds']:.0f}"]
          for (r, c), s in best_cells(rows, row_field, column_field).items()]
  return tables.markdown_table([row_field, column_field, "chosen by validation",
                                "best epoch", "train seconds"], body)


def pivot_table(rows: Sequence[dict], row_field: str, column_field: str,
                improvement: bool) -> str:
  """Rows x (column groups x Recall/NDCG@50), like the paper's Tables 2 and 3.

  With `improvement`, a last row gives PDNS's relative gain over the best
  other sampler of each column.
  """
  metrics = ("test/recall@50", "test/ndcg@50")
  settings = best_cells(rows, row_field, column_field)
  row_values = list(dict.fromkeys(r for r, _ in settings))
  column_values = list(dict.fromkeys(c for _, c in settings))
  header = [SYMBOLS.get(row_field, row_field)] + [
      f"{setting_text(column_field, c)} {plot.metric_label(m).split()[0]}"
      for c in column_values for m in metrics]
  body = [[value_text(row_field, r)] + [
      tables.mean_std(settings[r, c], m) if (r, c) in settings else "-"
      for c in column_values for m in metrics] for r in row_values]
  if improvement and "pdns" in row_values and len(row_values) > 1:
    gains = []
    for c in column_values:
      for m in metrics:
        baseline = max(settings[r, c].mean[m] for r in row_values
                       if r != "pdns" and (r, c) in settings)
        gains.append(f"{100 * (settings['pdns', c].mean[m] / baseline - 1):+.2f}%")
    body.append(["Improv. (PDNS vs best baseline)"] + gains)
  return tables.markdown_table(header, body)

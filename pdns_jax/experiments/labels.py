"""How experiments write samplers, datasets and settings in tables and legends.

Display text only: it is never parsed back (rows and curves carry the values).
"""

from __future__ import annotations

from pdns_jax.experiments.grid import format_value

DATASET_NAMES = {"ml100k": "Movielens-100k", "douban": "Douban", "gowalla": "Gowalla",
                 "taobao": "Taobao", "tmall": "Tmall", "synthetic": "Synthetic"}
MODEL_NAMES = {"mf": "MF", "lightgcn": "LightGCN"}
SAMPLER_NAMES = {"rns": "RNS", "dns": "DNS", "pdns": "PDNS", "mixgcf": "MixGCF",
                 "mix": "DNS+mixing", "srns": "SRNS", "gdns": "GDNS (reconstr.)",
                 "adasir_u": "AdaSIR(U)", "adasir_p": "AdaSIR(P)", "irgan": "IRGAN",
                 "advir": "AdvIR (reconstr.)"}
SYMBOLS = {"pool_size": "H", "alpha": "α", "beta": "β", "reveal_fraction": "c"}



def value_text(field: str, value) -> str:
  """A value as the paper writes it: sampler and dataset names, plain numbers."""
  names = {"sampler": SAMPLER_NAMES, "dataset": DATASET_NAMES}.get(field, {})
  return names.get(value, format_value(value))


def setting_text(field: str, value) -> str:
  """One field of a setting in legends and tables: `H=32`, `c=0.2`, `PDNS`."""
  if field in ("sampler", "dataset"):
    return value_text(field, value)
  text = f"{SYMBOLS.get(field, field)}={value_text(field, value)}"
  return text + " (DNS)" if field == "alpha" and value == 0 else text


def settings_text(values: dict) -> str:
  """A whole setting (field -> value) in legends and tables: `PDNS, H=32`."""
  return ", ".join(setting_text(f, v) for f, v in values.items() if f != "seed")

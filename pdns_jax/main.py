"""Command line: python -m pdns_jax.main --config=configs/synthetic.py --workdir=/tmp/run

Any config field can be overridden, e.g. --config.beta=0.1 --config.model=mf.
Re-running the same command on the same workdir resumes from its latest checkpoint.
"""

import logging as std_logging
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from pdns_jax import data as data_lib
from pdns_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, e.g. configs/ml100k.py (add :smoke for a tiny run).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries:
  """Drops the INFO chatter of orbax (it logs every file of every save)."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  logging.info("JAX backend %s, devices %s", jax.default_backend(), jax.devices())
  try:
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (train.ConfigError, data_lib.DataError, train.NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  replicas = summary["replicas"]
  for replica in replicas:
    label = f"{replica['hparams']}: " if len(replicas) > 1 else ""
    print(f"final {label}(test at the best validation epoch)",
          ", ".join(_format(k, replica[k]) for k in replica
                    if k.startswith(("best_epoch", "valid/", "test/"))))


def _format(key, value):
  return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"

if __name__ == "__main__":
  app.run(main)

"""Command line: python -m pdns_jax.main --config=configs/synthetic.py --workdir=/tmp/run

Any config field can be overridden, e.g. --config.beta=0.1 --config.model=mf.
With --config.distributed.num_processes=N, run the command once per process
(README "Several processes"). Re-running the same command on the same workdir
resumes from its latest checkpoint (a changed config is refused unless listed
in --config.resume_changes). A mistake a user can make ends with one `error:`
line naming the flag, field or file, and exit status 2.
"""

import logging as std_logging

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from pdns_jax import cli
from pdns_jax import distributed
from pdns_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, e.g. configs/ml100k.py (add :smoke for a tiny run).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries:
  """Drops harmless INFO chatter: orbax logs every file of every save, and JAX
  says which accelerator backends it did not find."""

  def filter(self, record):
    if record.levelno >= std_logging.WARNING:
      return True
    return "orbax" not in record.pathname and "Unable to initialize backend" not in str(
        record.msg)


def main():
  for handler in (logging.get_absl_handler(), *std_logging.getLogger().handlers):
    handler.addFilter(_QuietLibraries())
  std_logging.getLogger("jax._src.xla_bridge").addFilter(_QuietLibraries())
  distributed.initialize(_CONFIG.value)  # several processes: before JAX picks its devices
  logging.info("JAX backend %s, devices %s", jax.default_backend(), jax.devices())
  summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  replicas = summary["replicas"] if distributed.is_primary() else []
  for replica in replicas:
    label = f"{replica['hparams']}: " if len(replicas) > 1 else ""
    print(f"final {label}(test at the best validation epoch)",
          ", ".join(_format(k, replica[k]) for k in replica
                    if k.startswith(("best_epoch", "valid/", "test/"))))


def _format(key, value):
  return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"


if __name__ == "__main__":
  cli.run(main, verbosity=None)

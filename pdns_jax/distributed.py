"""One run over several processes (`config.distributed`, jax.distributed).

With `config.distributed.num_processes > 1` every process runs the same
command with its own `process_id`; `initialize(config)` connects it to the
coordinator (process 0, at `coordinator_address`) before JAX touches a
device. From then on `jax.devices()` lists every process's devices, so a
`config.mesh` of "data=-1" spans them all: each process holds its rows of the
tables and its examples of each batch, and XLA's collectives (gloo on CPU)
cross processes. Every process computes the same loop decisions from the
same global values (metrics are all-gathered before they reach the host).
Process 0 alone locks the workdir and writes config.json, metrics.jsonl,
summary.json and TensorBoard; all processes write their shards of each orbax
checkpoint (the workdir must be one shared folder).

A process whose peer dies does not wait for ever: the coordination service
notices the missing heartbeats after `timeout_s` and ends the process, and a
collective whose peer is gone fails at once.
"""

from __future__ import annotations

import hashlib
import json
import socket

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from pdns_jax.config import ConfigError

# Fields that may differ between the processes of one run.
PER_PROCESS = ("distributed.process_id",)


def _settings(config):
  return config.get("distributed") if "distributed" in config else None


def wanted_processes(config) -> int:
  settings = _settings(config)
  return 1 if settings is None else int(settings.num_processes)


def initialize(config) -> None:
  """Joins the run's other processes, when the config asks for several.

  Call before anything asks JAX for its devices. With one process (the
  default) nothing happens. Called again once initialized, it only checks.

  Raises:
    ConfigError: a field of config.distributed is impossible, the coordinator
      cannot be reached in time, or the processes disagree on their count or
      their config; each message names the field.
  """
  settings = _settings(config)
  count = wanted_processes(config)
  if count < 1:
    raise ConfigError(f"config.distributed.num_processes: must be >= 1 (got {count})")
  if count == 1:
    return
  if not settings.coordinator_address or ":" not in settings.coordinator_address:
    raise ConfigError("config.distributed.coordinator_address: several processes need the "
                      "coordinator's host:port (process 0 listens there), e.g. "
                      f"127.0.0.1:12345 (got {settings.coordinator_address!r})")
  if not 0 <= settings.process_id < count:
    raise ConfigError(f"config.distributed.process_id: must lie in [0, {count}) for "
                      f"num_processes={count} (got {settings.process_id})")
  if settings.timeout_s < 1:
    raise ConfigError(f"config.distributed.timeout_s: must be >= 1 (got {settings.timeout_s})")
  if not jax.distributed.is_initialized():
    if settings.process_id == 0:
      _check_port_free(settings.coordinator_address)
    # XLA's CPU client has no cross-process collectives without gloo; other
    # backends ignore the setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeout = int(settings.timeout_s)
    # Past the timeout JAX's C++ ends the process (DEADLINE_EXCEEDED), not Python.
    logging.info("process %d of %d: joining %s, waiting up to %d s for the others",
                 settings.process_id, count, settings.coordinator_address, timeout)
    try:
      jax.distributed.initialize(settings.coordinator_address, num_processes=count,
                                 process_id=int(settings.process_id),
                                 initialization_timeout=timeout,
                                 heartbeat_timeout_seconds=timeout,
                                 shutdown_timeout_seconds=timeout)
    except Exception as e:  # pylint: disable=broad-except
      # jax raises RuntimeError for a started backend and XlaRuntimeError
      # (DEADLINE_EXCEEDED, UNAVAILABLE) for a coordinator that never answered.
      raise ConfigError(
          f"config.distributed: process {settings.process_id} of {count} could not join "
          f"the coordinator at {settings.coordinator_address} within {timeout} s "
          f"({type(e).__name__}: {str(e).strip().splitlines()[0][:300]}); start every "
          "process with the same num_processes and coordinator_address, and run this "
          "before anything else uses JAX") from None
    logging.info("process %d of %d joined %s", jax.process_index(), jax.process_count(),
                 settings.coordinator_address)
  _check_agreement(config, count)


def _check_port_free(address: str) -> None:
  """Process 0 hosts the coordinator: its port must be free before JAX takes it.

  A second process 0 (a repeated process_id), or another program on the port,
  would otherwise end every process in an abort from JAX's C++ after the
  timeout, with no line naming the cause. (gRPC shares ports between its own
  servers, so only a plain bind sees the first one.)
  """
  port = int(address.rsplit(":", 1)[1])
  with socket.socket(socket.AF_INET6 if ":" in address.rsplit(":", 1)[0] else
                     socket.AF_INET) as probe:
    try:
      probe.bind(("", port))
    except OSError as e:
      raise ConfigError(
          f"config.distributed.coordinator_address: port {port} is in use here ({e.strerror}): "
          "is another process 0 of this run (a repeated process_id) or another program "
          "listening there? Give each process its own process_id, or pick a free port") from None


def _fingerprint(config) -> str:
  """sha256 of the config as JSON, without the fields that differ per process."""
  tree = json.loads(config.to_json())
  for dotted in PER_PROCESS:
    *parents, last = dotted.split(".")
    node = tree
    for name in parents:
      node = node.get(name, {})
    node.pop(last, None)
  return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()


def _check_agreement(config, count: int) -> None:
  """All processes expect `count` processes and run the same config, or all of them stop.

  The values are all-gathered first and checked after, so every process
  raises the same error instead of one leaving the others in a collective.
  """
  digest = np.frombuffer(bytes.fromhex(_fingerprint(config))[:16], np.uint32)
  mine = np.concatenate([[count], digest]).astype(np.uint32)
  everyone = np.asarray(multihost_utils.process_allgather(mine))
  counts = sorted(set(everyone[:, 0].tolist()))
  if counts != [jax.process_count()]:
    # The coordinator's count wins in jax.distributed: a process that asked
    # for another one would otherwise run with it silently.
    raise ConfigError(
        f"config.distributed.num_processes: the processes were started with "
        f"num_processes={counts}, but {jax.process_count()} joined the coordinator at "
        f"{config.distributed.coordinator_address}; give every process the same, right count")
  if (everyone[:, 1:] != digest).any():
    other = int(np.flatnonzero((everyone[:, 1:] != digest).any(axis=1))[0])
    raise ConfigError(f"config: process {other}'s config differs from process "
                      f"{jax.process_index()}'s; start every process with the same config "
                      "and flags (only config.distributed.process_id may differ)")


def is_primary() -> bool:
  """Whether this process writes the run's files (process 0; the only one alone)."""
  return jax.process_index() == 0


def to_host(tree):
  """`jax.device_get` that also reads arrays split over other processes' devices."""
  def read(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable and \
        not leaf.is_fully_replicated:
      return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return jax.device_get(leaf)
  return jax.tree_util.tree_map(read, tree)


def agree(error: Exception | None) -> None:
  """Raises on every process when any process met an error (else nothing).

  A step that may fail on one process only (taking the workdir's lock) is
  followed by this, so the others stop too instead of waiting in the next
  collective. With one process it re-raises `error` as it is.
  """
  if jax.process_count() == 1:
    if error is not None:
      raise error
    return
  failed = np.asarray(multihost_utils.process_allgather(np.int32(error is not None)))
  if error is not None:
    raise error
  if failed.any():
    raise ConfigError(f"process {int(np.flatnonzero(failed)[0])} stopped with an error "
                      "(see its log); every process stops")

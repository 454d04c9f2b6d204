"""What the launch scripts measure with: timed calls, compiles, peak memory, output lines.

Every figure waits for the device (`block_until_ready`) before the clock is
read, and is printed as one `name: value` line that scripts and tests parse.
"""

from __future__ import annotations

import resource
import time
from typing import Any, Callable

import jax


def timed(fn: Callable, *args) -> tuple[Any, float]:
  """(fn(*args), seconds), waiting for every output to be computed."""
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def compiled(jitted: Callable, *args) -> tuple[Callable, float]:
  """Ahead-of-time compiles `jitted` for these arguments: (executable, seconds)."""
  start = time.perf_counter()
  executable = jitted.lower(*args).compile()
  return executable, time.perf_counter() - start


def timed_cpu(fn: Callable, *args) -> tuple[Any, float, float]:
  """(fn(*args), wall seconds, CPU seconds of this process), waiting for the outputs.

  CPU seconds count the work of every XLA thread, so on a shared machine they
  move less with other processes' load than wall seconds do.
  """
  start, cpu = time.perf_counter(), time.process_time()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start, time.process_time() - cpu


# ----------------------------------------------------------------------------
# Memory.


def rss_peak_reset() -> bool:
  """Restarts the kernel's peak-RSS counter (VmHWM) where Linux allows it."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def max_rss_bytes() -> int:
  """Peak resident memory of this process over its whole life."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def rss_peak_bytes() -> int:
  """Peak resident memory of this process: VmHWM (resettable), else ru_maxrss."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return max_rss_bytes()


def peak_memory() -> tuple[int, str]:
  """(bytes, source): the device's peak if the backend reports it, else host RSS."""
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
  return max_rss_bytes(), "host peak RSS (ru_maxrss)"


def print_figure(name: str, value) -> None:
  """One `name: value` line (floats to 6 significant digits), flushed at once."""
  if isinstance(value, float):
    value = f"{value:.6g}"
  print(f"{name}: {value}", flush=True)


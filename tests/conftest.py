"""Test setup: repo root importable, split caches in a per-session temp folder."""

import os
import pathlib
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
# Tests that need a real dataset read it from ../shared/data (CI has it there).
os.environ.setdefault("PDNS_DATA_DIR", str(SHARED_DATA))
# Many tests compile the same tiny programs (also in subprocesses): share the
# compiled code through JAX's persistent cache instead of compiling again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="pdns_jax_xla_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


@pytest.fixture(autouse=True, scope="session")
def _split_cache(tmp_path_factory):
  os.environ["PDNS_CACHE_DIR"] = str(tmp_path_factory.mktemp("split_cache"))
  yield

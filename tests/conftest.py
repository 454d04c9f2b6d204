"""Test setup: split caches in a per-session temp folder, a shared compile cache.

The project is installed (`pip install -r requirements.txt` ends with `-e .`),
so `pdns_jax`, `configs` and `launch` import without path edits.
"""

import os
import pathlib
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
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

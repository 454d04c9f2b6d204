"""Test setup: repo root importable, split caches in a per-session temp folder."""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True, scope="session")
def _split_cache(tmp_path_factory):
  os.environ["PDNS_CACHE_DIR"] = str(tmp_path_factory.mktemp("split_cache"))
  yield

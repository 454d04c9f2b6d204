"""Property: whatever bytes a data file holds, the parsers either load it or
raise DataError; never another exception."""

import gzip
import pathlib
import tempfile

from hypothesis import given, settings, strategies as st

from pdns_jax.data import DataError, douban, gowalla, movielens, tianchi
from pdns_jax.data.substitutes import PAIRS
from pdns_jax.data.tables import iter_table

# Bytes that look like the formats, with every kind of damage mixed in.
NEAR_VALID = st.lists(st.sampled_from(
    [b"1", b"23", b"-4", b"99999999999999999999", b",", b" ", b"\t", b"\n", b"\r\n",
     b"\r", b"pv", b"1.5", b"\xff", b"\x00", b"user_id", b"\xe4\xb8\xad", b"_", b"+"]),
    max_size=60).map(b"".join)
CONTENT = st.one_of(st.binary(max_size=300), NEAR_VALID)


def _parse_all(path: pathlib.Path) -> None:
  for dataset in tianchi.RAW_LOGS:
    for chunk_bytes in (7, 1 << 16):
      try:
        tianchi.load_raw(path, dataset, min_interactions=1, num_users=2, seed=0,
                         chunk_bytes=chunk_bytes)
      except DataError:
        pass
  for read in (lambda: list(iter_table(path, PAIRS, chunk_bytes=5)),
               lambda: gowalla.read_user_lists(path)):
    try:
      read()
    except DataError:
      pass


@settings(max_examples=50, deadline=None)
@given(content=CONTENT, gz=st.booleans(), cut=st.integers(0, 40))
def test_text_parsers_raise_only_data_error(content, gz, cut):
  with tempfile.TemporaryDirectory() as folder:
    if gz:
      packed = gzip.compress(content)
      path = pathlib.Path(folder) / "data.gz"
      path.write_bytes(packed[:len(packed) - cut] if cut else packed)
    else:
      path = pathlib.Path(folder) / "data.txt"
      path.write_bytes(content)
    _parse_all(path)


@settings(max_examples=50, deadline=None)
@given(content=CONTENT)
def test_movielens_and_douban_raise_only_data_error(content):
  with tempfile.TemporaryDirectory() as folder:
    root = pathlib.Path(folder)
    for relative, load in (("ml-100k/u.data", movielens.load),
                           ("douban/training_test_dataset.mat", douban.load)):
      path = root / relative
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(content)
      try:
        load(root)
      except DataError:
        pass

"""Bad input: every user-fixable problem is a DataError naming file and line,
and no split cache is left behind."""

import builtins
import gzip

import numpy as np
import pytest

from configs import default
from pdns_jax import data as data_lib
from pdns_jax.data import DataError, douban, gowalla, movielens, substitutes, tianchi
from pdns_jax.data.tables import TableSpec, iter_table

TAOBAO_ROWS = "1,10,5,pv,100\n1,11,5,buy,101\n2,10,5,pv,102\n"


def _write(path, text, gz=False):
  path.parent.mkdir(parents=True, exist_ok=True)
  data = text.encode() if isinstance(text, str) else text
  path.write_bytes(gzip.compress(data) if gz else data)
  return path


def _taobao(path, **kw):
  return tianchi.load_raw(path, "taobao", min_interactions=kw.pop("min_interactions", 1),
                          num_users=kw.pop("num_users", 0), seed=0, **kw)


@pytest.mark.parametrize("line,message", [
    ("1,12,5,pv", r"line 3: expected 5 fields"),
    ("1,12,5,pv,100,7", r"line 3: expected 5 fields"),
    ("1,x12,5,pv,100", r"line 3: expected integer ids.*x12"),
    ("1,1.5,5,pv,100", r"line 3: expected integer ids"),
    ("1,99999999999999999999999,5,pv,100", r"line 3: expected integer ids"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, message):
  lines = TAOBAO_ROWS.splitlines()
  lines.insert(2, line)
  for chunk_bytes in (8, 1 << 20):  # the error is found whichever chunk holds it
    path = _write(tmp_path / "UserBehavior.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"UserBehavior.csv, {message}"):
      _taobao(path, chunk_bytes=chunk_bytes)


def test_truncated_gzip(tmp_path):
  whole = gzip.compress((TAOBAO_ROWS * 2000).encode())
  path = _write(tmp_path / "UserBehavior.csv.gz", whole[:len(whole) // 2])
  with pytest.raises(DataError, match="corrupt or truncated gzip"):
    _taobao(path)
  lists = gzip.compress("".join(f"{u} 1 2 3\n" for u in range(5000)).encode())
  with pytest.raises(DataError, match="corrupt or truncated gzip"):
    gowalla.read_user_lists(_write(tmp_path / "train.txt.gz", lists[:len(lists) // 2]))


def test_not_gzip_at_all(tmp_path):
  with pytest.raises(DataError, match="gzip"):
    _taobao(_write(tmp_path / "UserBehavior.csv.gz", TAOBAO_ROWS))


@pytest.mark.parametrize("content", ["", "\n\n", gzip.compress(b"")])
def test_empty_files(tmp_path, content):
  name = "x.gz" if isinstance(content, bytes) else "x"
  path = _write(tmp_path / name, content)
  with pytest.raises(DataError, match="empty"):
    _taobao(path)
  with pytest.raises(DataError, match="empty"):
    gowalla.read_user_lists(path)


def test_header_only_tmall_log_is_empty(tmp_path):
  path = _write(tmp_path / "user_log_format1.csv",
                "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n")
  with pytest.raises(DataError, match="empty"):
    tianchi.load_raw(path, "tmall", min_interactions=1, num_users=0, seed=0)


def test_invalid_utf8_names_the_line(tmp_path):
  path = _write(tmp_path / "u.csv", TAOBAO_ROWS.encode() + b"3,\xff,5,pv,1\n")
  with pytest.raises(DataError, match=r"u.csv, line 4: not UTF-8"):
    _taobao(path)


def test_binary_without_newlines_is_rejected_without_buffering_it(tmp_path):
  path = _write(tmp_path / "u.csv", b"7" * (3 << 20))
  with pytest.raises(DataError, match="line 1: longer than"):
    _taobao(path, chunk_bytes=1 << 16)


@pytest.mark.parametrize("num_users", [0, 5])
def test_no_user_left_after_filtering(tmp_path, num_users):
  path = _write(tmp_path / "UserBehavior.csv", TAOBAO_ROWS)
  with pytest.raises(DataError, match="no user has at least 3 interactions"):
    _taobao(path, min_interactions=3, num_users=num_users)


def test_negative_subset_settings(tmp_path):
  path = _write(tmp_path / "UserBehavior.csv", TAOBAO_ROWS)
  with pytest.raises(DataError, match="config.subset"):
    _taobao(path, num_users=-1)


def test_gowalla_ids_not_integers(tmp_path):
  _write(tmp_path / "gowalla" / "train.txt", "0 1 2\n1 2 three\n")
  _write(tmp_path / "gowalla" / "test.txt", "0 3\n")
  with pytest.raises(DataError, match=r"train.txt, line 2: expected integer ids"):
    gowalla.load(tmp_path)


def test_gowalla_without_test_pairs(tmp_path):
  _write(tmp_path / "gowalla" / "train.txt", "0 1 2\n")
  _write(tmp_path / "gowalla" / "test.txt", "0\n1\n")
  with pytest.raises(DataError, match="must both hold pairs"):
    gowalla.load(tmp_path)


@pytest.mark.parametrize("content", [b"not hdf5 at all", None])
def test_douban_not_the_expected_file(tmp_path, content):
  path = tmp_path / "douban" / "training_test_dataset.mat"
  if content is None:  # valid HDF5 without M
    import h5py  # pylint: disable=import-outside-toplevel
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
      f["Otraining"] = np.zeros((2, 2))
  else:
    _write(path, content)
  with pytest.raises(DataError, match="not GC-MC's Douban file"):
    douban.load(tmp_path)


def test_missing_files_say_how_to_get_them(tmp_path):
  for dataset, needle in [("douban", "gc-mc"), ("gowalla", "LightGCN"),
                          ("taobao", "UserBehavior.csv"), ("tmall", "user_log_format1")]:
    c = default.get_config()
    c.unlock()
    c.dataset, c.data_dir = dataset, str(tmp_path)
    with pytest.raises(DataError, match=f"not found.*{needle}"):
      data_lib.load_interactions(c)


def test_failed_load_leaves_no_cache(tmp_path):
  _write(tmp_path / "taobao" / "UserBehavior.csv", TAOBAO_ROWS + "4,4,4\n")
  c = default.get_config()
  c.unlock()
  c.dataset, c.data_dir = "taobao", str(tmp_path)
  before = set(data_lib.cache_dir().glob("*")) if data_lib.cache_dir().exists() else set()
  with pytest.raises(DataError, match="line 4"):
    data_lib.load_split(c)
  after = set(data_lib.cache_dir().glob("*")) if data_lib.cache_dir().exists() else set()
  assert after == before


def test_lenient_forms_parse_like_python_ints(tmp_path):
  # numpy's fast parser rejects these; the line parser (int()) accepts them,
  # so a file reads the same however it is chunked.
  path = _write(tmp_path / "t.txt", "1  2\n 3 4 \n5\t6\r\n")
  spec = TableSpec(sep=" ", num_fields=2, columns=(0, 1))
  tables = list(iter_table(path, spec))
  np.testing.assert_array_equal(np.concatenate(tables), [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize("line,found", [("1\t2\t3\t4\t5\t6", 6), ("1\t2\t3", 3)])
def test_u_data_line_with_wrong_field_count(tmp_path, line, found):
  _write(tmp_path / "ml-100k" / "u.data", f"1\t1\t3\t10\n2\t1\t3\t10\n{line}\n")
  with pytest.raises(DataError, match=rf"u.data, line 3: expected 4 fields, found {found}"):
    movielens.load(tmp_path)


def _refuse_to_open(monkeypatch, target):
  """Makes opening `target` fail as an unreadable file does (root ignores chmod)."""
  real_open = builtins.open

  def guarded(file, *args, **kwargs):
    if str(file) == str(target):
      raise PermissionError(13, "Permission denied", str(file))
    return real_open(file, *args, **kwargs)

  monkeypatch.setattr(builtins, "open", guarded)


def _douban_file(root):
  import h5py  # pylint: disable=import-outside-toplevel
  path = root / "douban" / "training_test_dataset.mat"
  path.parent.mkdir(parents=True)
  with h5py.File(path, "w") as f:
    f["M"] = np.eye(3)
  return path


# (file written, loader reading it) for every loader.
UNREADABLE = {
    "ml100k": (lambda root: _write(root / "ml-100k" / "u.data", "1\t1\t3\t10\n"),
               movielens.load),
    "douban": (_douban_file, douban.load),
    "gowalla": (lambda root: (_write(root / "gowalla" / "test.txt", "0 3\n"),
                              _write(root / "gowalla" / "train.txt.gz", "0 1 2\n", gz=True))[1],
                gowalla.load),
    "tianchi": (lambda root: _write(root / "UserBehavior.csv", TAOBAO_ROWS),
                lambda root: _taobao(root / "UserBehavior.csv")),
    "substitute": (lambda root: [_write(root / "taobao" / f"{b}.txt", "1 1\n")
                                 for b in ("buy", "cart", "valid", "test")][0],
                   lambda root: substitutes.load(root, "taobao", default.get_config())),
}


@pytest.mark.parametrize("loader", sorted(UNREADABLE))
def test_unreadable_file_names_the_path(tmp_path, monkeypatch, loader):
  write, load = UNREADABLE[loader]
  path = write(tmp_path)
  _refuse_to_open(monkeypatch, path)
  with pytest.raises(DataError, match=rf"{path}: cannot read the file \(Permission denied\)"):
    load(tmp_path)


def test_unreadable_file_through_load_split(tmp_path, monkeypatch):
  path = _write(tmp_path / "ml-100k" / "u.data", "1\t1\t3\t10\n")
  _refuse_to_open(monkeypatch, path)
  c = default.get_config()
  c.unlock()
  c.dataset, c.data_dir = "ml100k", str(tmp_path)
  with pytest.raises(DataError, match=rf"{path}: cannot read the file"):
    data_lib.load_split(c)


def test_folder_where_a_data_file_should_be(tmp_path):
  (tmp_path / "ml-100k" / "u.data").mkdir(parents=True)
  with pytest.raises(DataError, match=r"u.data is not a regular file"):
    movielens.load(tmp_path)
  (tmp_path / "UserBehavior.csv").mkdir()
  with pytest.raises(DataError, match=r"UserBehavior.csv: cannot read the file"):
    _taobao(tmp_path / "UserBehavior.csv")
  with pytest.raises(DataError, match=r"UserBehavior.csv: cannot read the file"):
    gowalla.read_user_lists(tmp_path / "UserBehavior.csv")

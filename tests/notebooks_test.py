"""The notebooks run end to end at smoke scale, and are committed without outputs."""

import pathlib

import nbformat
from nbclient import NotebookClient
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SHARED_DATA = ROOT.parent / "shared" / "data"
NAMES = ("quickstart.ipynb", "false_negatives.ipynb")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_at_smoke_scale(name, tmp_path, monkeypatch):
  if not (SHARED_DATA / "ml-100k" / "u.data").is_file():
    pytest.skip(f"Movielens-100k not found under {SHARED_DATA}")
  # The kernel inherits this environment: smoke scale, data and outputs.
  monkeypatch.setenv("PDNS_SMOKE", "1")
  monkeypatch.setenv("PDNS_DATA_DIR", str(SHARED_DATA))
  monkeypatch.setenv("PDNS_WORKDIR", str(tmp_path))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  assert any("image/png" in o.get("data", {}) for o in outputs), "no figure shown"
  assert list(tmp_path.glob("smoke/**/summary.json"))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
  nbformat.validate(notebook)
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]

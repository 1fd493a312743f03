"""The walkthrough notebooks run top to bottom (smallest settings), so a broken one fails CI.

Each notebook is copied to a temporary folder and executed there with nbclient, with the kernel's
working directory at the repository root (the notebooks find the root by walking up to setup.cfg),
FER_NB_SMALL=1 (the smallest settings) and FER_NB_OUTPUT pointing at one temporary folder shared by
the three, so 03 reuses the model 01 trained and nothing is written under outputs/.
The kernel is `python3`: jupyter_client runs a kernelspec whose argv starts with `python` with the
interpreter running the tests (`sys.executable`), and ipykernel provides that spec when none is installed.
"""

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["01_quickstart.ipynb", "02_data_tour.ipynb", "03_error_analysis.ipynb"]  # 03 reuses 01's model


@pytest.fixture(scope="module")
def nb_output(tmp_path_factory):
    return tmp_path_factory.mktemp("nb_outputs")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path, nb_output, monkeypatch):
    copy = tmp_path / name
    shutil.copy(ROOT / "notebooks" / name, copy)
    monkeypatch.setenv("FER_NB_SMALL", "1")
    monkeypatch.setenv("FER_NB_OUTPUT", str(nb_output))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # Agg would swallow plt.show(); the kernel uses inline
    nb = nbformat.read(copy, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{name}: no cell tagged 'parameters'"

    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError, with the failing cell and traceback, on any error
    nbformat.write(nb, copy)

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any({"image/png", "image/jpeg"} & set(o.get("data", {})) for o in outputs), f"{name}: produced no figure"
    if name == "01_quickstart.ipynb":
        assert (nb_output / "nb_quickstart" / "config.json").is_file()
        assert (nb_output / "nb_quickstart" / "eval" / "metrics.json").is_file()
    if name == "03_error_analysis.ipynb":
        assert (nb_output / "nb_error_analysis" / "predictions.csv").is_file()

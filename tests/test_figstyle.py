"""The figure style in a real Jupyter kernel: a figure drawn with it is shown in its own cell,
and so is every later figure (an rc_context around plt.subplots broke that once: on leaving it
restored the backend setting, and the inline backend stopped showing figures)."""
import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow


def test_every_cell_shows_the_figure_it_draws():
    cells = ["import matplotlib.pyplot as plt\nfrom asyncrl_lab import figstyle\nfigstyle.use()",
             "fig, ax = figstyle.figure()\nax.plot([1, 2])",
             "fig, axes = figstyle.figure(2)\naxes[0].plot([1, 2])",
             "fig, ax = plt.subplots()\nax.plot([1, 2])"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, kernel_name="python3", timeout=60).execute()
    shown = [sum("image/png" in o.get("data", {}) for o in cell.outputs) for cell in notebook.cells]
    assert shown == [0, 1, 1, 1]

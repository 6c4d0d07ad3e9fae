"""Offer every executed chapter as an .ipynb in the page header's download menu.

sphinx-book-theme adds the ".ipynb" entry when `ipynb_source` is in the page context, but sets it
only when launch buttons (Binder, Colab, ...) are configured. This extension copies the notebook
MyST-NB executed (with its outputs) next to the page sources and sets `ipynb_source` itself; it
runs before the theme builds the header (priority 500 < 501).
"""
from pathlib import Path
from shutil import copy2


def _offer_notebook(app, pagename, templatename, context, doctree):
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.exists():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    app.connect("html-page-context", _offer_notebook, priority=500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

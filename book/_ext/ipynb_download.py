"""Offer every executed chapter as an .ipynb in the page header's download menu.

sphinx-book-theme adds the ".ipynb" entry when `ipynb_source` is in the page context, but sets it
only when launch buttons (Binder, Colab, ...) are configured. This extension writes the notebook
MyST-NB executed (with its outputs) next to the page sources, rewritten from MyST into plain
Jupyter markdown by asyncrl_lab.book.notebooks (the included code inlined, glued values
substituted, solutions collapsed), and sets `ipynb_source` itself; it runs before the theme builds
the header (priority 500 < 501). A MyST construct the rewrite does not know fails the build.
"""
import json
from functools import lru_cache
from pathlib import Path

import nbformat
from sphinx.errors import ExtensionError

from asyncrl_lab.book.notebooks import Page, UnsupportedMyST, downloadable, read_bibliography


@lru_cache(maxsize=None)
def _bibliography(files: tuple) -> dict:
    """Read once per build, not once per page (`files` holds modification times, so that a
    rebuild in the same process sees an edited .bib)."""
    return read_bibliography(path for path, _ in files)


def _exec_table(env) -> str:
    """{nb-exec-table} as markdown: the columns and formats of MyST-NB's own table."""
    from myst_nb.ext.execution_tables import _key2header, _key2transform
    from myst_nb.sphinx_ import NbMetadataCollector

    rows = ["| Document | " + " | ".join(_key2header.values()) + " |",
            "|---" * (len(_key2header) + 1) + "|"]
    for docname, data in sorted(NbMetadataCollector.get_doc_data(env).items()):
        if data.get("exec_data"):
            rows.append(f"| {docname} | " + " | ".join(
                transform(data["exec_data"][key]) for key, transform in _key2transform.items())
                + " |")
    return "\n".join(rows)


def _labels(env) -> dict:
    """The book's labels, as references to them show: a section's title, an equation's number."""
    labels = {label: (docname, title)
              for label, (docname, _, title) in env.get_domain("std").labels.items() if title}
    labels.update((label, (docname, f"({number})"))
                  for label, (docname, number) in env.get_domain("math").equations.items())
    return labels


def _offer_notebook(app, pagename, templatename, context, doctree):
    executed_dir = Path(app.outdir).parent / "jupyter_execute"
    executed = executed_dir / f"{pagename}.ipynb"
    if not executed.exists():
        return
    env = app.env
    glue = executed.with_suffix(".glue.json")  # the glued outputs, which MyST-NB takes out
    page = Page(
        docname=pagename,
        source_dir=Path(env.doc2path(pagename)).parent,
        glue=json.loads(glue.read_text()) if glue.exists() else {},
        bibliography=_bibliography(tuple((path, path.stat().st_mtime) for path in (
            Path(app.srcdir) / name for name in app.config.bibtex_bibfiles))),
        titles={docname: title.astext() for docname, title in env.titles.items()},
        notebooks=frozenset(d for d in env.found_docs
                            if (executed_dir / f"{d}.ipynb").exists()),
        labels=_labels(env),
        toc=env.toctree_includes.get(pagename, ()),
        exec_table=_exec_table(env))
    try:
        notebook = downloadable(nbformat.read(executed, as_version=4), page)
    except UnsupportedMyST as exc:
        raise ExtensionError(f"{pagename}: cannot write its downloadable notebook: {exc}") from exc
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.from_dict(notebook), target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    app.connect("html-page-context", _offer_notebook, priority=500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

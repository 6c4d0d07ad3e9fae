"""The downloadable notebook: every MyST construct the chapters use becomes plain Jupyter markdown,
code cells and outputs are kept, solutions are collapsed, and an unknown construct is an error
that names the page and the directive (the build then fails rather than ship it raw)."""
import base64
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from sphinx.errors import ExtensionError

import helpers
from asyncrl_lab.book.notebooks import Page, UnsupportedMyST, downloadable, read_bibliography

BIBLIOGRAPHY = {"mnih2016": (("Mnih", "Badia", "Mirza"), "2016"),
                "tieleman2012": (("Tieleman", "Hinton"), "2012"),
                "williams1992": (("Williams",), "1992")}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()


def glued(value: str, **more) -> dict:
    """A glued output as MyST-NB stores it in <page>.glue.json."""
    return {"output_type": "display_data", "metadata": {"scrapbook": {"name": "x"}},
            "data": {"text/plain": value, **more}}


def page(tmp_path: Path, **kwargs) -> Page:
    defaults = dict(docname="book/ch", source_dir=tmp_path, bibliography=BIBLIOGRAPHY,
                    titles={"book/ch": "This chapter", "book/other": "The other chapter",
                            "book/references": "References"},
                    notebooks=frozenset({"book/ch", "book/other"}))
    return Page(**{**defaults, **kwargs})


def rewrite(tmp_path, *cells, **kwargs) -> dict:
    cells = [new_markdown_cell(textwrap.dedent(c)) if isinstance(c, str) else c for c in cells]
    out = downloadable(new_notebook(cells=cells), page(tmp_path, **kwargs))
    nbformat.validate(nbformat.from_dict(out))
    return out


def markdown(tmp_path, source: str, **kwargs) -> str:
    return "\n\n".join(c["source"] for c in rewrite(tmp_path, source, **kwargs)["cells"])


def test_literalinclude_shows_the_lines_the_page_shows(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(textwrap.dedent('''\
        import os


        def worker(ctx):
            """Work."""
            return ctx + 1


        class Net:
            def forward(self, x):
                # start
                y = x * 2
                # end
                return y
        '''))
    (tmp_path / "book").mkdir()
    source_dir = tmp_path / "book"
    out = markdown(tmp_path, """\
        Before.

        ```{literalinclude} ../pkg/mod.py
        :pyobject: worker
        ```
        """, source_dir=source_dir)
    assert out == ('Before.\n\n```python\ndef worker(ctx):\n    """Work."""\n'
                   '    return ctx + 1\n```')
    out = markdown(tmp_path, """\
        ```{literalinclude} ../pkg/mod.py
        :start-after: "# start"
        :end-before: "# end"
        :dedent: 8
        :caption: the middle
        ```
        """, source_dir=source_dir)
    assert out == "*the middle*\n\n```python\ny = x * 2\n```"
    out = markdown(tmp_path, "```{literalinclude} ../pkg/mod.py\n:lines: 1\n```\n",
                   source_dir=source_dir)
    assert out == "```python\nimport os\n```"
    with pytest.raises(UnsupportedMyST, match="missing.py"):
        markdown(tmp_path, "```{literalinclude} ../pkg/missing.py\n```\n", source_dir=source_dir)


def test_glued_values_are_substituted_as_myst_nb_shows_them(tmp_path):
    glue = {"rate": glued("'1,234'"), "ratio": glued("0.5123"), "name": glued("'a3c_cartpole *x*'"),
            "curve": glued("<Figure>", **{"image/png": PNG})}
    out = markdown(tmp_path, """\
        At {glue:text}`rate` steps/s, a ratio of {glue:text}`ratio:.2f` ({glue:text}`ratio:.0%`),
        study {glue:text}`name`; the role any keeps the repr: {glue}`rate`.

        ```{glue:figure} curve
        :alt: the curve

        The learning *curve*.
        ```
        """, glue=glue)
    assert "At 1,234 steps/s, a ratio of 0.51 (51%)," in out
    assert r"study a3c_cartpole \*x\*; the role any keeps the repr: '1,234'." in out
    assert "![the curve](attachment:curve.png)\n\nThe learning *curve*." in out
    cell = rewrite(tmp_path, "```{glue} curve\n```\n", glue=glue)["cells"][0]
    assert cell["source"] == "![curve](attachment:curve.png)"
    assert cell["attachments"] == {"curve.png": {"image/png": PNG}}
    with pytest.raises(UnsupportedMyST, match="no glued value named 'missing'"):
        markdown(tmp_path, "{glue:text}`missing`", glue=glue)


def test_exercises_and_solutions_are_readable_and_solutions_collapsed(tmp_path):
    out = markdown(tmp_path, """\
        ```{exercise} Returns by hand
        :label: ex-returns

        Compute $R_0$.
        ```

        ```{solution} ex-returns
        :class: dropdown

        $R_0 = 2.71$.
        ```
        """)
    assert out == ("**Exercise: Returns by hand**\n\nCompute $R_0$.\n\n"
                   "**Solution: Returns by hand**\n\n"
                   "<details><summary>Solution</summary>\n\n$R_0 = 2.71$.\n\n</details>")


def test_a_solution_spanning_cells_hides_its_code_and_its_markdown(tmp_path):
    setup = new_code_cell("import os", metadata={"tags": ["remove-cell"]})
    solution = new_code_cell("print(2.71)", outputs=[
        new_output("stream", name="stdout", text="2.71\n")])
    after = new_code_cell("print('next')")
    nb = rewrite(tmp_path, setup, """\
        ```{exercise} Code it
        :label: ex-code

        Write it.
        ```

        ```{solution-start} ex-code
        :class: dropdown
        ```

        Start from the definition.
        """, solution, """\
        It prints 2.71.

        ```{solution-end}
        ```

        ## Next section
        """, after)
    md, code = ([c for c in nb["cells"] if c["cell_type"] == kind] for kind in ("markdown", "code"))
    assert md[0]["source"] == ("**Exercise: Code it**\n\nWrite it.\n\n**Solution: Code it**\n\n"
                               "<details><summary>Solution</summary>\n\nStart from the "
                               "definition.\n\n</details>")
    assert md[1]["source"] == ("<details><summary>Solution</summary>\n\nIt prints 2.71.\n\n"
                               "</details>\n\n## Next section")
    assert code[0] == setup  # setup the code needs stays, as it was
    assert code[1]["source"] == "print(2.71)" and code[1]["outputs"] == solution["outputs"]
    assert code[1]["metadata"] == {"jupyter": {"source_hidden": True, "outputs_hidden": True},
                                   "tags": ["solution"]}
    assert code[2] == after


def test_algorithms_and_admonitions_become_blockquotes_with_a_bold_title(tmp_path):
    out = markdown(tmp_path, """\
        ```{prf:algorithm} One actor-learner
        :label: alg-one

        1. **repeat**
            1. Sync $\\theta' \\leftarrow \\theta$
        ```

        :::{note}
        Mind the GIL.
        :::

        ```{admonition} Why processes
        Threads share one GIL.
        ```

        ```{margin}
        A side remark.
        ```

        See {prf:ref}`alg-one`.
        """)
    assert ("> **Algorithm: One actor-learner**\n>\n> 1. **repeat**\n"
            ">     1. Sync $\\theta' \\leftarrow \\theta$") in out
    assert "> **Note**\n>\n> Mind the GIL." in out
    assert "> **Why processes**\n>\n> Threads share one GIL." in out
    assert "> **Margin**\n>\n> A side remark." in out
    assert "See One actor-learner." in out


def test_citations_become_author_year_text(tmp_path):
    out = markdown(tmp_path, "A3C {cite}`mnih2016`, RMSProp {cite:p}`tieleman2012,williams1992`;"
                             " {cite:t}`mnih2016` showed it.")
    assert out == ("A3C [Mnih *et al.*, 2016], RMSProp [Tieleman and Hinton, 2012, Williams, "
                   "1992]; Mnih *et al.* [2016] showed it.")
    with pytest.raises(UnsupportedMyST, match="'nobody2020'"):
        markdown(tmp_path, "{cite}`nobody2020`")


def test_the_bibliography_is_read_with_the_names_the_page_prints(tmp_path):
    bib = tmp_path / "refs.bib"
    bib.write_text("@inproceedings{r2011, title={Hogwild}, year={2011},\n"
                   "  author={Recht, Benjamin and R{\\'e}, Christopher}}\n")
    assert read_bibliography([bib]) == {"r2011": (("Recht", "Ré"), "2011")}


def test_cross_references_become_their_text(tmp_path):
    out = markdown(tmp_path, """\
        (sec-returns)=
        ## The $n$-step returns

        $$
        R = r + \\gamma V
        $$ (eq-return)

        Then:

        ```{math}
        :label: eq-adv
        A = R - V
        ```

        As {eq}`eq-return` and {eq}`eq-adv` show (see {ref}`sec-returns`, {numref}`Section %s
        <sec-returns>`, {ref}`this part <sec-returns>`), a {term}`rollout` or
        {term}`rollouts <rollout>`; {math}`\\gamma`. Next: {doc}`other`, {doc}`the list
        <references>`, {doc}`/book/other`.
        """)
    assert "(sec-returns)=" not in out and out.startswith("## The $n$-step returns")
    assert "$$\nR = r + \\gamma V\n\\tag{1} $$\n\nThen:" in out
    assert "$$\nA = R - V\n\\tag{2}\n$$" in out
    assert ("As (1) and (2) show (see The $n$-step returns, Section The $n$-step returns, "
            "this part), a rollout or\nrollouts; $\\gamma$.") in out
    assert ("Next: [The other chapter](other.ipynb), the list, "
            "[The other chapter](other.ipynb).") in out
    with pytest.raises(UnsupportedMyST, match="unknown document 'missing'"):
        markdown(tmp_path, "{doc}`missing`")


def test_references_to_other_pages_link_their_notebook(tmp_path):
    out = markdown(tmp_path, "The loss {eq}`eq-loss`, {prf:ref}`Algorithm S3 <alg-a3c>` and "
                             "the {ref}`sources <refs>`.",
                   labels={"eq-loss": ("book/other", "(4)"), "alg-a3c": ("book/other", "x"),
                           "refs": ("book/references", "References")})
    assert out == ("The loss [(4)](other.ipynb), [Algorithm S3](other.ipynb) and the sources.")


def test_code_cells_and_outputs_are_kept_and_code_stays_literal(tmp_path):
    code = new_code_cell("x = 1", metadata={"tags": ["remove-input"]}, execution_count=3,
                         outputs=[new_output("execute_result", data={"text/plain": "1"},
                                             execution_count=3)])
    nb = rewrite(tmp_path, "Use `{cite}` roles, not ``{doc}`x` `` ones.\n\n"
                           "```bash\necho {glue:text}`x`\n```\n", code)
    assert nb["cells"][0]["source"] == ("Use `{cite}` roles, not ``{doc}`x` `` ones.\n\n"
                                        "```bash\necho {glue:text}`x`\n```")
    assert nb["cells"][1] == code


def test_the_table_of_contents_and_the_execution_table(tmp_path):
    out = markdown(tmp_path, "```{tableofcontents}\n```\n\n```{nb-exec-table}\n```\n",
                   toc=["book/other", "book/references"], exec_table="| a |\n|---|")
    assert out == "- [The other chapter](other.ipynb)\n- References\n\n| a |\n|---|"


def test_an_unknown_directive_or_role_is_an_error_not_left_raw(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("# T"), new_markdown_cell("```{figure} x.png\n```")],
                      metadata={"source_map": [10, 12]})
    with pytest.raises(UnsupportedMyST, match=r"directive \{figure\} \(cell 1, near line 12"):
        downloadable(nb, page(tmp_path))
    with pytest.raises(UnsupportedMyST, match=r"role \{abbr\}"):
        markdown(tmp_path, "An {abbr}`RL (reinforcement learning)` book.")


def test_the_extension_fails_the_build_naming_the_page_and_the_directive(tmp_path, monkeypatch):
    """book/_ext/ipynb_download.py, with the part of Sphinx it uses stood in for."""
    monkeypatch.syspath_prepend(str(Path(helpers.ROOT) / "book" / "_ext"))
    import ipynb_download

    executed = tmp_path / "_build" / "jupyter_execute" / "book"
    executed.mkdir(parents=True)
    (tmp_path / "book").mkdir()
    (tmp_path / "refs.bib").write_text("")
    domain = SimpleNamespace(labels={}, equations={})
    env = SimpleNamespace(doc2path=lambda doc: str(tmp_path / f"{doc}.md"), titles={},
                          found_docs={"book/ch"}, toctree_includes={},
                          get_domain=lambda name: domain)
    app = SimpleNamespace(outdir=str(tmp_path / "_build" / "html"), srcdir=str(tmp_path), env=env,
                          config=SimpleNamespace(bibtex_bibfiles=["refs.bib"]))
    glue = {"steps": glued("'75,115'")}
    (executed / "ch.glue.json").write_text(json.dumps(glue))
    nbformat.write(new_notebook(cells=[new_markdown_cell("{glue:text}`steps` steps")]),
                   executed / "ch.ipynb")
    context = {}
    ipynb_download._offer_notebook(app, "book/ch", "page.html", context, None)
    assert context["ipynb_source"] == "book/ch.ipynb"
    written = nbformat.read(tmp_path / "_build" / "html" / "_sources" / "book" / "ch.ipynb", 4)
    assert written.cells[0].source == "75,115 steps"
    nbformat.write(new_notebook(cells=[new_markdown_cell("```{sidenote}\nx\n```")]),
                   executed / "ch.ipynb")
    with pytest.raises(ExtensionError, match=r"book/ch: .*\{sidenote\}"):
        ipynb_download._offer_notebook(app, "book/ch", "page.html", {}, None)

"""The book builds in quick mode: every chapter executes without error, every page exists with its
figures, exercises, algorithm blocks and .ipynb download; and `make book` re-executes the chapters
when the package changes."""
import ast
import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

import helpers
from asyncrl_lab.algos import config_for
from asyncrl_lab.book.checks import CHECKS
from asyncrl_lab.book.grading import grade_notebook

pytestmark = pytest.mark.slow  # make test-fast leaves it out

ROOT = Path(helpers.ROOT)


# Figures each chapter draws when executed (quick mode draws the same figures as the full book).
MIN_FIGURES = {"book/preface": 1, "book/dqn_to_parallel": 3, "book/parallel_pytorch": 3,
               "book/one_step_q": 3, "book/n_step_q": 3, "book/a3c": 6, "book/a3c_lstm": 2, "book/a2c": 4,
               "book/acer": 3, "book/claims": 5, "book/scaling_out": 4}


def test_every_chapter_is_listed_and_accounted_for():
    assert set(helpers.book_pages(back_matter=False)) == set(MIN_FIGURES)


@pytest.mark.parametrize("chapter", sorted(MIN_FIGURES))
def test_chapter_page_has_its_figures_and_no_errors(quick_book, chapter):
    page = (quick_book / "html" / f"{chapter}.html").read_text()
    figures = re.findall(r'<img [^>]*src="[^"]*_images/[0-9a-f]+\.png"', page)
    assert len(figures) >= MIN_FIGURES[chapter], f"{chapter}: {len(figures)} figures"
    assert "Traceback" not in page and "output error" not in page
    assert "Interactive controls" in page  # a widget cell, shown as a note in the static book
    assert page.count('class="exercise admonition"') >= 3
    assert re.search(r"\{exercise\}[^\n]*\(coding\)", (ROOT / f"{chapter}.md").read_text())
    # the header's download menu offers the executed notebook, and the notebook is there
    assert f"_sources/{chapter}.ipynb" in page
    assert (quick_book / "html" / "_sources" / f"{chapter}.ipynb").exists()


@pytest.mark.parametrize("chapter", ["book/dqn_to_parallel", "book/parallel_pytorch", "book/a3c",
                                     "book/a2c", "book/acer"])
def test_chapter_has_algorithms_solutions_real_code_and_citations(quick_book, chapter):
    page = (quick_book / "html" / f"{chapter}.html").read_text()
    source = (ROOT / f"{chapter}.md").read_text()
    assert "solution" in page and "dropdown" in page
    assert 'class="admonition algorithm' in page or "proof algorithm" in page
    assert "{literalinclude} ../asyncrl_lab/" in source  # the package's real code, not a copy
    assert "{cite" in source


def test_the_a3c_chapter_shows_measured_runs(quick_book):
    page = (quick_book / "html" / "book" / "a3c.html").read_text()
    assert re.search(r"T = [\d,]+ / [\d,]+ steps \(100%\)", page)  # the final progress line
    text = re.sub(r"<[^>]+>", "", page)
    assert re.search(r"\d+ of \d+ seeds reached a rolling mean of 475", text)
    assert re.search(r"Study a3c_cartpole: \d+ runs .* at commit [0-9a-f]{10}", text)
    assert "def worker(ctx: AsyncContext)" in text


def test_the_build_report_lists_every_chapter_with_its_run_time(quick_book):
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (quick_book / "html" / "book" /
                                                        "build_report.html").read_text()))
    for chapter in MIN_FIGURES:  # document, modified, method, run time (s), status
        assert re.search(rf"{chapter} [\d-]+ [\d:]+ cache \d+\.?\d* ✅", text), chapter


def test_the_reference_page_gives_every_option_its_sentence(quick_book):
    # Sphinx's smartquotes turns "RMSProp's" into "RMSProp&#8217;s"
    page = html.unescape((quick_book / "html" / "book" / "api.html").read_text())
    text = re.sub(r"<[^>]+>", " ", page).replace("\u2019", "'")
    for algo in ("one_step_q", "n_step_q", "a3c", "a2c", "acer"):
        for field in config_for(algo).describe():
            assert field["doc"].split()[0] in text and field["name"] in text, (algo, field)
    assert "Steps of a rollout before each update" in text and "--entropy-beta" in text
    assert "Preset" in text and "CartPole-v1" in text


def test_references_resolve(quick_book):
    page = (quick_book / "html" / "book" / "references.html").read_text()
    for author in ("Mnih", "Wang", "Recht", "Munos", "Williams", "Schulman", "Wu"):
        assert author in page


def make_book_clears_cache(tree: Path, **env) -> bool:
    """Run `make book` in `tree` (whose jupyter-book is a stand-in that does nothing) and say
    whether it cleared the execution cache."""
    marker = tree / "_build" / ".jupyter_cache" / "cached"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    environment = {k: v for k, v in os.environ.items() if k != "ASYNCRL_QUICK"}
    proc = subprocess.run(["make", "book"], cwd=tree, capture_output=True, text=True, timeout=60,
                          env={**environment, **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return not marker.exists()


def test_make_book_clears_the_execution_cache_when_its_inputs_change(tmp_path):
    """jupyter-cache keys on the notebooks' code cells only; the Makefile must clear it when the
    package, results/ or quick mode change, and only then."""
    tree = tmp_path / "tree"
    for name in ("Makefile", "_config.yml", "requirements.txt", "pyproject.toml"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tree / name)
    for path in ("asyncrl_lab/run.py", "book/_ext/ipynb_download.py", "results/soak.txt",
                 ".venv/.installed"):
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text("x")
    (tree / ".venv/bin").mkdir()
    for tool in ("python", "jupyter-book"):
        (tree / ".venv/bin" / tool).write_text("#!/bin/sh\nexit 0\n")
        (tree / ".venv/bin" / tool).chmod(0o755)
    assert make_book_clears_cache(tree)  # the first build
    assert not make_book_clears_cache(tree)  # nothing changed
    for changed in ("asyncrl_lab/run.py", "results/soak.txt"):
        earlier = time.time() - 100  # the last build was a while ago
        os.utime(tree / "_build/.book-inputs", (earlier, earlier))
        (tree / changed).write_text("changed")
        assert make_book_clears_cache(tree), changed
        assert not make_book_clears_cache(tree)
    assert make_book_clears_cache(tree, ASYNCRL_QUICK="1")
    assert not make_book_clears_cache(tree, ASYNCRL_QUICK="1")
    assert make_book_clears_cache(tree)


def downloaded(quick_book, chapter):
    return nbformat.read(quick_book / "html" / "_sources" / f"{chapter}.ipynb", as_version=4)


# MyST that plain Jupyter shows raw: directives, roles, label targets, equation labels
RAW_MYST = re.compile(r"```\{|:::\{|\{[A-Za-z][\w:+.-]*\}`|^\s*\(\S+\)=[ \t]*$|\$\$[ \t]*\(\S+\)",
                      re.M)


@pytest.mark.parametrize("chapter", sorted(MIN_FIGURES))
def test_the_downloaded_notebook_is_plain_jupyter_with_the_code_and_the_numbers(quick_book,
                                                                                chapter):
    notebook = downloaded(quick_book, chapter)
    nbformat.validate(notebook)
    markdown = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert not RAW_MYST.findall(markdown), RAW_MYST.findall(markdown)[:5]
    source = (ROOT / f"{chapter}.md").read_text()
    for name in re.findall(r"```\{literalinclude\}[^\n]*\n:pyobject: (\S+)", source):
        assert re.search(rf"^ *(def|class) {name.split('.')[-1]}\b", markdown, re.M), name
    if chapter == "book/a3c":
        assert "def worker(ctx: AsyncContext)" in markdown
    glue_file = quick_book / "jupyter_execute" / f"{chapter}.glue.json"
    glue = json.loads(glue_file.read_text()) if glue_file.exists() else {}
    shown = re.sub(r"\\([^\w\s])", r"\1", markdown)  # the escapes that keep glued text literal
    for key in set(re.findall(r"\{glue:text\}`([^`:]+)`", source)):
        assert str(ast.literal_eval(glue[key]["data"]["text/plain"])) in shown, key
    # solutions: a heading each, the prose collapsed, the code cells collapsed and tagged
    solutions = source.count("```{solution}") + source.count("```{solution-start}")
    assert markdown.count("**Solution") == solutions > 0
    assert markdown.count("<details><summary>Solution</summary>") >= source.count("```{solution}")
    hidden_code = sum(len(re.findall(r"```\{code-cell\}", block)) for block in re.findall(
        r"```\{solution-start\}.*?```\{solution-end\}", source, re.S))
    tagged = [c for c in notebook.cells if "solution" in c.metadata.get("tags", [])]
    assert len(tagged) == hidden_code
    assert all(c.cell_type == "code" and c.metadata.jupyter == {"source_hidden": True,
                                                                "outputs_hidden": True}
               for c in tagged)


@pytest.mark.parametrize("chapter", sorted(MIN_FIGURES))
def test_the_downloaded_notebook_passes_the_grader_with_its_solutions(quick_book, chapter,
                                                                       monkeypatch):
    """The teacher's notebook, run by the grader in a fresh kernel and an empty directory: every
    cell runs, and each of the chapter's autograded exercises passes its check."""
    monkeypatch.setenv("ASYNCRL_QUICK", "1")  # the kernel inherits it
    graded = grade_notebook(quick_book / "html" / "_sources" / f"{chapter}.ipynb", timeout=600)
    expected = {name for name, check in CHECKS.items() if f"book/{check.chapter}" == chapter}
    assert expected, f"{chapter} has no autograded exercise"
    assert {r.check for r in graded.rows} == expected, graded.rows
    assert all(r.status == "pass" for r in graded.rows), graded.rows

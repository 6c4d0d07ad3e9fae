"""The student edition: the stripping of solutions (on pages written here, no build), and the
edition `make student` builds (quick mode): no solution text or code of any chapter anywhere in
it, the stubs in place, and its notebooks graded as a student would hand them in untouched."""
import html
import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

import helpers
from asyncrl_lab.book.student import SplitSolutions, UnclosedSolution, has_solutions, strip_page
from asyncrl_lab.book.checks import CHECK_CALL, CHECKS
from asyncrl_lab.book.grading import SUBMISSION, grade_notebook

ROOT = Path(helpers.ROOT)
FRONT = """---
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""
PAGE = FRONT + """
# A page

Some text before.

```{exercise} Write f
:label: ex-f

Write `f`.
```

```{code-cell} ipython3
def f(x):
    raise NotImplementedError
```

```{solution-start} ex-f
:class: dropdown
```

Double it, here is why: PROSE_IN_SOLUTION.

```{code-cell} ipython3
def f(x):
    return 2 * x  # CODE_IN_SOLUTION
```

More PROSE_IN_SOLUTION after the code.

```{solution-end}
```

Text right after it stays.

```{code-cell} ipython3
from asyncrl_lab.book.checks import check_n_step_returns

check_n_step_returns(f)
```

````{solution} ex-f
A block solution with a fence inside, BLOCK_SOLUTION:

```python
f(1)  # FENCED_IN_SOLUTION
```
````

The end.
"""


def test_solutions_are_removed_and_the_rest_kept():
    student = strip_page(PAGE)
    assert not re.search(r"_IN_SOLUTION|BLOCK_SOLUTION|solution", student)
    for kept in ("Some text before.", "Write `f`.", "raise NotImplementedError",
                 "Text right after it stays.", "The end.", "# A page"):
        assert kept in student, kept
    nb = jupytext.reads(student, fmt="md:myst")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.source.splitlines()[0] for c in code] == [
        "def f(x):", "from asyncrl_lab.book.checks import check_n_step_returns"]
    assert code[1].metadata["tags"] == ["raises-exception"]  # the stub fails its check
    assert "tags" not in code[0].metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_a_page_without_solutions_is_unchanged():
    page = FRONT + "\n# Plain\n\n```{exercise} E\nNo solution here.\n```\n"
    assert not has_solutions(page) and strip_page(page) == page


def test_unbalanced_solutions_are_errors_not_leaks():
    with pytest.raises(UnclosedSolution, match="without its solution-end"):
        strip_page(FRONT + "\n```{solution-start} ex\n```\n\nsecret\n")
    with pytest.raises(UnclosedSolution, match="outside a solution"):
        strip_page(FRONT + "\n```{solution-end}\n```\n")
    with pytest.raises(UnclosedSolution, match="never closed"):
        strip_page(FRONT + "\n````{solution} ex\nsecret\n```\n")
    with pytest.raises(ValueError, match="must be a notebook"):
        strip_page("# No front matter\n\n```{solution} ex\nsecret\n```\n")


# --- the edition `make student` builds ----------------------------------------------------------

def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+", text.lower())


def shingles(text: str, n: int = 8) -> set[tuple]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def solution_parts(page: Path) -> tuple[list[str], str]:
    """The page's solutions (each its prose and code, in one text) and the rest of its text."""
    nb = jupytext.reads(page.read_text(), fmt="md:myst")
    nb, _ = SplitSolutions().preprocess(nb, {})
    solutions, rest, current = [], [], None
    for cell in nb.cells:
        if "solution" not in cell.metadata.get("tags", []):
            current = None
            rest.append(cell.source)
            continue
        if current is None:
            current = []
            solutions.append(current)
        current.append(cell.source)
    return ["\n".join(parts) for parts in solutions], "\n".join(rest)


def teacher_texts():
    """{(page, i): solution text} and the text a solution may share without leaking: every
    page's text outside its solutions, and the package's source (which chapters include)."""
    solutions, shared = {}, []
    for page in sorted((ROOT / "book").glob("*.md")):
        found, rest = solution_parts(page)
        solutions.update({(page.stem, i): text for i, text in enumerate(found)})
        shared.append(rest)
    shared += [p.read_text() for p in (ROOT / "asyncrl_lab").rglob("*.py")]
    return solutions, "\n".join(shared)


def readable_text(path: Path) -> str:
    """What a reader could read in a file of a built edition: a page's text, a notebook's cells
    and outputs, a source file; "" for what holds no prose (styles, scripts, images)."""
    if path.suffix == ".ipynb":
        parts = []
        for cell in nbformat.read(path, as_version=4).cells:
            parts.append(cell.source)
            for out in cell.get("outputs", []):
                parts += [out.get("text", ""), *(v if isinstance(v, str) else json.dumps(v)
                                                 for v in out.get("data", {}).values())]
        return "\n".join(parts)
    if path.suffix == ".html":
        return html.unescape(re.sub(r"<[^>]+>", " ", path.read_text(errors="replace")))
    if path.suffix in (".md", ".py", ".txt", ".yml", ".json"):
        return path.read_text(errors="replace")
    return ""


def edition_shingles(folder: Path) -> set[tuple]:
    found = set()
    for path in folder.rglob("*"):
        if path.is_file() and not any(p.is_symlink() for p in [path, *path.parents]):
            found |= shingles(readable_text(path))
    return found


def index_terms(html_dir: Path) -> set[str]:
    text = (html_dir / "searchindex.js").read_text()
    index = json.loads(text[text.index("(") + 1:text.rindex(")")])
    return set(index["terms"]) | set(index.get("titleterms", {}))


@pytest.fixture(scope="module")
def unique_solution_shingles():
    solutions, shared = teacher_texts()
    common = shingles(shared)
    unique = {key: shingles(text) - common for key, text in solutions.items()}
    assert len(unique) >= 20  # every chapter's solutions, the autograded ones included
    return unique


@pytest.mark.slow
def test_no_solution_text_or_code_anywhere_in_the_student_edition(student_edition, quick_book,
                                                                   unique_solution_shingles):
    assert sorted(p.name for p in (student_edition / "notebooks").iterdir()) == sorted(
        f"{Path(page).name}.ipynb" for page in helpers.book_pages(back_matter=False))
    student, teacher = edition_shingles(student_edition), edition_shingles(quick_book / "html")
    for key, unique in unique_solution_shingles.items():
        # the test can fail: the teacher's edition shows each solution, found by its shingles
        assert unique & teacher, f"solution {key} not found in the teacher's book"
        leaked = unique & student
        assert not leaked, f"solution {key} leaked: {' '.join(sorted(leaked)[0])}"


@pytest.mark.slow
def test_the_search_index_holds_no_word_found_only_in_solutions(student_edition, quick_book):
    from sphinx.search.en import SearchEnglish

    stem = SearchEnglish({}).stem
    solutions, shared = teacher_texts()
    def stems(text):  # of words, not numbers: the index holds every page's outputs' numbers too
        return {stem(w) for w in words(text) if not w.isdigit()}
    only_in_solutions = set().union(*map(stems, solutions.values())) - stems(shared)
    indexed = only_in_solutions & index_terms(quick_book / "html")
    assert len(indexed) >= 10, indexed  # the teacher's index has them: the test can fail
    assert not indexed & index_terms(student_edition / "html"), indexed & index_terms(
        student_edition / "html")


@pytest.mark.slow
def test_the_student_edition_has_its_title_and_every_stub(student_edition):
    preface = (student_edition / "html" / "book" / "preface.html").read_text()
    assert "<title>Preface &#8212; asyncrl_lab" in preface
    assert "(student edition)</title>" in preface
    for name, check in CHECKS.items():
        page = (student_edition / "src" / "book" / f"{check.chapter}.md").read_text()
        assert re.search(rf"check_{name}\(my_\w+\)", page), name
        assert "raise NotImplementedError" in page


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted({c.chapter for c in CHECKS.values()}))
def test_an_untouched_student_notebook_fails_every_check_naming_the_stub(student_edition,
                                                                          chapter, monkeypatch):
    monkeypatch.setenv("ASYNCRL_QUICK", "1")  # the kernel inherits it
    graded = grade_notebook(student_edition / "notebooks" / f"{chapter}.ipynb", timeout=600)
    expected = {name for name, c in CHECKS.items() if c.chapter == chapter}
    assert {r.check for r in graded.rows} == expected, graded.rows
    for row in graded.rows:
        assert row.status == "error" and "raised NotImplementedError" in row.message, row
        assert "replace `raise NotImplementedError` with your code" in row.message
    assert SUBMISSION not in {r.check for r in graded.rows}


@pytest.mark.parametrize("chapter", sorted({c.chapter for c in CHECKS.values()}))
def test_each_check_has_a_cell_of_its_own(chapter):
    """A failing check stops its cell: a second check in the same cell would never run, and the
    grader would report it as never run instead of naming the stub."""
    nb = jupytext.reads((ROOT / "book" / f"{chapter}.md").read_text(), fmt="md:myst")
    calls = [CHECK_CALL.findall(c.source) for c in nb.cells if c.cell_type == "code"]
    assert all(len(found) <= 1 for found in calls), calls
    assert {name for found in calls for name in found} == {
        name for name, c in CHECKS.items() if c.chapter == chapter}

"""The student edition: the book built from the same sources with every solution removed.

    python -m asyncrl_lab.book.student [OUT]        (make student; OUT defaults to _build/student)

writes, from nothing each time (OUT is replaced):

    OUT/html/               the HTML book, titled "(student edition)"
    OUT/notebooks/<chapter>.ipynb  each chapter's downloadable notebook, the stubs in place
    OUT/src/                the stripped sources the two were built from

A solution is a `{solution}` block or everything from a `{solution-start}` block to its
`{solution-end}`, prose and code cells alike. Each page with solutions is read as a notebook by
jupytext (the MyST the chapters are written in); `SplitSolutions` cuts its markdown cells where
solutions begin and end and tags every piece of a solution, and nbconvert's own
TagRemovePreprocessor removes the tagged cells; jupytext writes the page back as MyST. A cell
that calls a check is tagged `raises-exception`: with the stubs in place it fails, as it should,
and the build goes on. Pages without solutions are copied unchanged. The stripped book is then
built by jupyter-book as the teacher's is (quick mode, ASYNCRL_QUICK, passes through).

Why not sphinx-exercise's `hide_solutions`: it crashes on `solution-start`/`solution-end`, and it
would hide solutions from the HTML only, as `remove-cell` tags do, leaving them in every
downloaded notebook. Otter Assign, the classroom tool for this, reads .ipynb with its own cell
markers, not MyST pages whose solutions span cells.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor

from .checks import CHECK_CALL

ROOT = Path(__file__).resolve().parents[2]
SOLUTION_TAG = "solution"
EDITION = " (student edition)"
# the block that opens a solution ({solution} or {solution-start}) or closes one
_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<kind>solution|solution-start|solution-end)\}")


def book_pages(root: Path = ROOT, back_matter: bool = True) -> list[str]:
    """The book's pages in the order of _toc.yml: the preface and every part's chapters, with or
    without the back matter (the pages that run no chapter's experiments)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]
                            if back_matter or part["caption"] != "Back matter"]


class UnclosedSolution(ValueError):
    """A `{solution-start}` without its `{solution-end}`, or a solution block left open."""


def _blocks(text: str):
    """Markdown split at its solution blocks: (None, text) for the text between them, and
    (kind, block) for a whole {solution}, {solution-start} or {solution-end} block, its fences
    and options included."""
    lines, start, i = text.split("\n"), 0, 0
    while i < len(lines):
        m = _OPEN.match(lines[i].lstrip(" "))
        if not m:
            i += 1
            continue
        fence, end = m.group("fence"), i + 1
        while end < len(lines) and not re.fullmatch(
                rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[end]):
            end += 1
        if end == len(lines):
            raise UnclosedSolution(f"the {m.group('kind')} block at line {i + 1} of a cell is "
                                   f"never closed:\n{lines[i]}")
        if i > start:
            yield None, "\n".join(lines[start:i])
        yield m.group("kind"), "\n".join(lines[i:end + 1])
        start = i = end + 1
    if start < len(lines):
        yield None, "\n".join(lines[start:])


class SplitSolutions(Preprocessor):
    """Cut markdown cells at the edges of solutions and tag every cell of a solution (its prose,
    its code cells, its opening and closing blocks) with SOLUTION_TAG; tag each cell that calls
    a check with `raises-exception`. Removing the tagged cells leaves the student's page."""

    def preprocess(self, nb, resources):
        cells, inside = [], False
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                if inside:
                    self._tag(cell, SOLUTION_TAG)
                elif cell.cell_type == "code" and CHECK_CALL.search(cell.source):
                    self._tag(cell, "raises-exception")
                cells.append(cell)
                continue
            for kind, text in _blocks(cell.source):
                piece = nbformat.v4.new_markdown_cell(text.strip("\n"))
                if kind == "solution-start":
                    if inside:
                        raise UnclosedSolution(f"a solution-start inside a solution:\n{text}")
                    inside = True
                if kind is not None or inside:
                    self._tag(piece, SOLUTION_TAG)
                if kind == "solution-end":
                    if not inside:
                        raise UnclosedSolution(f"a solution-end outside a solution:\n{text}")
                    inside = False
                if piece.source:
                    cells.append(piece)
        if inside:
            raise UnclosedSolution("a solution-start without its solution-end")
        nb.cells = cells
        return nb, resources

    @staticmethod
    def _tag(cell, tag: str):
        cell.metadata["tags"] = [*cell.metadata.get("tags", []), tag]


def has_solutions(text: str) -> bool:
    return any(kind is not None for kind, _ in _blocks(text))


def strip_page(text: str) -> str:
    """A page's MyST source with its solutions removed (see the module's docstring)."""
    if not has_solutions(text):
        return text
    nb = jupytext.reads(text, fmt="md:myst")
    if "kernelspec" not in nb.metadata:
        raise ValueError("a page with solutions must be a notebook (a kernelspec in its front "
                         "matter): its solutions' code cells run")
    nb, _ = SplitSolutions().preprocess(nb, {})
    nb, _ = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}).preprocess(nb, {})
    return jupytext.writes(nb, fmt="md:myst")


def write_sources(src: Path, root: Path = ROOT) -> list[str]:
    """The student edition's sources under `src`: the book's configuration with the edition in
    its title, every page stripped, and a link to the package (the pages' literalincludes read
    ../asyncrl_lab). Returns the pages that had solutions."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["title"] += EDITION
    src.mkdir(parents=True)
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copyfile(root / "_toc.yml", src / "_toc.yml")
    shutil.copytree(root / "book", src / "book", ignore=shutil.ignore_patterns(
        "__pycache__", ".ipynb_checkpoints", "*.md"))
    stripped = []
    for page in sorted((root / "book").glob("*.md")):
        text = page.read_text()
        student = strip_page(text)
        if has_solutions(student):
            raise AssertionError(f"{page.name}: a solution survived the stripping")
        if student != text:
            stripped.append(page.stem)
        (src / "book" / page.name).write_text(student)
    (src / "asyncrl_lab").symlink_to(root / "asyncrl_lab", target_is_directory=True)
    return stripped


def build(out: Path, root: Path = ROOT) -> Path:
    """Build the student edition into `out` (replaced), printing each step."""
    out = Path(out).resolve()
    if out == root or root.is_relative_to(out) or out.is_relative_to(root / "book"):
        raise ValueError(f"{out} holds the book's own sources: choose another output folder")
    if out.exists():
        shutil.rmtree(out)
    stripped = write_sources(out / "src", root)
    print(f"student edition: removed the solutions of {len(stripped)} pages "
          f"({', '.join(stripped)}) into {out / 'src'}", flush=True)
    work = out / "work"
    print("student edition: building the book (every chapter executes) ...", flush=True)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jupyter_book), "build", str(out / "src"), "--path-output",
                           str(work), "--warningiserror", "--keep-going"])
    if proc.returncode != 0:
        raise RuntimeError(f"the student edition's build failed (exit status {proc.returncode}):"
                           f" its log is above, its sources in {out / 'src'}")
    shutil.move(work / "_build" / "html", out / "html")
    shutil.rmtree(work)
    notebooks = out / "notebooks"
    notebooks.mkdir()
    for page in book_pages(root, back_matter=False):
        shutil.copyfile(out / "html" / "_sources" / f"{page}.ipynb",
                        notebooks / f"{Path(page).name}.ipynb")
    print(f"student edition: {out / 'html' / 'index.html'} and "
          f"{len(list(notebooks.iterdir()))} notebooks in {notebooks}", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m asyncrl_lab.book.student",
                                     description="Build the book's student edition: every "
                                                 "solution removed, the stubs in place.")
    parser.add_argument("out", nargs="?", default=str(ROOT / "_build" / "student"),
                        help="output folder, replaced (default: _build/student)")
    build(Path(parser.parse_args(argv).out))


if __name__ == "__main__":
    main()

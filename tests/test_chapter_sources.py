"""The chapters' sources: prose lives in Markdown with glued numbers, never in Markdown built by
code, and every visible code cell is short."""
import re
from pathlib import Path

import pytest

import helpers

ROOT = Path(helpers.ROOT)


def code_cells(source: str):
    """(tags, lines) of each code cell of a MyST notebook."""
    for cell in re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", source, flags=re.S):
        lines = cell.strip("\n").split("\n")
        tags = " ".join(line for line in lines if line.startswith(":tags:"))
        yield tags, [line for line in lines if line.strip() and not line.startswith(":tags:")]


@pytest.mark.parametrize("chapter", sorted(Path(ROOT, "book").glob("*.md")), ids=lambda p: p.stem)
def test_chapters_glue_numbers_not_sentences_and_keep_cells_short(chapter):
    source = chapter.read_text()
    assert "{glue:md}" not in source and not re.search(r"Markdown\(\s*f[\"']", source)
    for tags, lines in code_cells(source):
        if "remove-cell" not in tags and "remove-input" not in tags:
            assert len(lines) <= 30, f"a visible cell of {len(lines)} lines: {lines[0]}"

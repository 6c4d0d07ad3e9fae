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


# --- The notation table against the chapters' math ------------------------------------------------

GREEK = set("""alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu
xi pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda
Xi Pi Sigma Upsilon Phi Psi Omega ell""".split())
DECORATIONS = {"bar", "hat", "tilde"}
DROPPED = {"text", "mathrm", "operatorname", "mathbb", "textrm", "mbox", "label", "begin", "end"}
NAMED_SUBSCRIPTS = {"v", "a"}  # theta_v, c_v: the value's; theta_a: the average policy's


def _group(tex: str, i: int) -> tuple[str, int]:
    """The braced group (or the single token) at tex[i]: its content and the index after it."""
    if tex[i] == "{":
        depth, j = 0, i
        while j < len(tex):
            depth += {"{": 1, "}": -1}.get(tex[j], 0)
            if depth == 0:
                return tex[i + 1:j], j + 1
            j += 1
        return tex[i + 1:], len(tex)
    if tex[i] == "\\":
        m = re.match(r"\\([A-Za-z]+|.)", tex[i:])
        return m.group(), i + m.end()
    return tex[i], i + 1


def math_symbols(tex: str, scan_indices: bool = True) -> set[str]:
    """The symbols of one piece of TeX math, each written in a canonical form.

    A symbol is a Latin letter or a Greek-letter command (\\theta, \\rho, \\ell, ...), a calligraphic
    letter (\\mathcal{D}), or d\\theta (an accumulated gradient); with its decoration (\\bar, \\hat,
    \\tilde), its primes, a superscript - or * (\\theta^-, z^*), and a sub- or superscript that is a
    *name*: two or more letters (t_{max}, I_{target}, Q^{ret}, D_{KL}) or one of v and a (\\theta_v,
    c_v, \\theta_a). Any other sub- or superscript is an index (s_t, \\rho_i, R^e_t, x_{t+1}) or a
    power: it is not part of the symbol, and, where `scan_indices`, its own symbols count. Not
    symbols: digits, the contents of \\text, \\mathrm, \\operatorname and \\mathbb (E, Var, ESS,
    Unif), every other command (\\log, \\min, \\sum, \\nabla, \\frac, spacing ...), and the
    extra space of a line break (\\\\[4pt]).
    """
    tex = re.sub(r"\\\\\[[^\]]*\]", " ", tex)
    tex = re.sub(r"\\(?:" + "|".join(DROPPED) + r")\s*\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", " ", tex)
    found, i = set(), 0
    while i < len(tex):
        ch = tex[i]
        base = None
        if ch == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[i:])
            name, i = m.group(1), i + m.end()
            if name in DECORATIONS:
                while i < len(tex) and tex[i] == " ":
                    i += 1
                inner, i = _group(tex, i)
                inner_symbols = math_symbols(inner, scan_indices)
                base = f"\\{name}{{{' '.join(sorted(inner_symbols))}}}"
            elif name == "mathcal":
                inner, i = _group(tex, i)
                base = f"\\mathcal{{{inner.strip()}}}"
            elif name in GREEK:
                base = f"\\{name}"
            else:
                continue  # an operator, a function name or spacing; what follows is read on
        elif ch.isalpha():
            base, i = ch, i + 1
            if ch == "d" and tex.startswith("\\theta", i) and not tex[i + 6:i + 7].isalpha():
                base, i = "d\\theta", i + 6
        else:
            i += 1
            continue
        while i < len(tex) and tex[i] == "'":
            base, i = base + "'", i + 1
        while i < len(tex) and tex[i] in "_^":
            mark = tex[i]
            content, i = _group(tex, i + 1)
            plain = content.strip()
            if (re.fullmatch(r"[A-Za-z]{2,}", plain) or plain in NAMED_SUBSCRIPTS and mark == "_"
                    or plain in ("-", "*") and mark == "^"):
                base += f"{mark}{{{plain}}}"
            elif scan_indices:
                found |= math_symbols(content)
        found.add(base)
    return found


def page_math(source: str) -> list[str]:
    """The TeX of every formula on a MyST page: $...$, $$...$$ and {math} blocks and roles, outside
    code cells, included code and code blocks."""
    kept, pieces, block, directives = [], [], None, 0
    for line in source.splitlines():
        fence = re.match(r"```(\{[^}]*\})?([a-z0-9]*)", line)
        if block is not None:  # inside code, or a {math} block
            if line.strip() == "```":
                if block != "code":
                    pieces.append("\n".join(block))
                block = None
            elif block != "code":
                block.append(line)
        elif fence and fence.group(1) in ("{code-cell}", "{literalinclude}"):
            block = "code"
        elif fence and fence.group(1) == "{math}":
            block = []
        elif fence and fence.group(1):  # a directive whose content is prose: exercise, ...
            directives += 1
        elif fence and line.strip() == "```" and directives:
            directives -= 1
        elif fence:  # a plain code block: ```bash, ```python, ```
            block = "code"
        elif not line.startswith(":"):  # a directive's options (:label:, :class:) are not prose
            kept.append(line)
    source = "\n".join(kept)
    pieces += re.findall(r"\{math\}`([^`]*)`", source)
    source = re.sub(r"`[^`\n]*`", "", source)  # inline code, roles' targets, glued names
    pieces += re.findall(r"\$\$(.*?)\$\$", source, flags=re.S)
    source = re.sub(r"\$\$.*?\$\$", "", source, flags=re.S)
    pieces += re.findall(r"\$((?:[^$\\]|\\.)+?)\$", source)
    return pieces


def notation_table() -> list[tuple[str, str]]:
    """(symbol cell, meaning cell) of each row of the preface's notation table."""
    preface = (ROOT / "book" / "preface.md").read_text()
    section = preface.split("\n## Notation\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]
    return [(cell[0], cell[1]) for cell in cells]


def table_symbols() -> dict[str, list[str]]:
    """Each symbol of the table's symbol column, with the rows that list it."""
    listed: dict[str, list[str]] = {}
    for symbol_cell, _ in notation_table():
        for tex in page_math(symbol_cell):
            for symbol in math_symbols(tex, scan_indices=False):
                listed.setdefault(symbol, []).append(symbol_cell)
    return listed


def test_the_extraction_finds_symbols_and_only_symbols():
    assert math_symbols(r"R^e_{t_{max}} = V(s^{e,\text{final}}_{t+1}; \theta'_v)") == {
        "R", "e", "t_{max}", "V", "s", "t", "\\theta'_{v}"}
    assert math_symbols(r"\bar\rho_i = \min\{1, \rho_i(a_i)\} \mathbb{E}_\pi \log f") == {
        "\\bar{\\rho}", "i", "\\rho", "a", "\\pi", "f"}
    assert math_symbols(r"Q^{ret} \leftarrow 0; d\theta_v \leftarrow d\theta_v + z^* \theta^-") == {
        "Q^{ret}", "d\\theta_{v}", "z^{*}", "\\theta^{-}"}
    assert page_math("a $x$ and `$y$`\n\n$$\nz_{max}\n$$ (eq-z)\n") == ["\nz_{max}\n", "x"]


def test_every_math_symbol_of_the_book_is_in_the_notation_table():
    listed = table_symbols()
    missing = {}
    for page in sorted(Path(ROOT, "book").glob("*.md")):
        for tex in page_math(page.read_text()):
            for symbol in math_symbols(tex) - set(listed):
                missing.setdefault(symbol, page.name)
    assert not missing, "symbols missing from the notation table (book/preface.md): " + ", ".join(
        f"{symbol} (used in book/{page})" for symbol, page in sorted(missing.items()))


def test_the_notation_table_lists_each_symbol_once():
    listed = table_symbols()
    assert listed, "no notation table found in book/preface.md"
    twice = {symbol: rows for symbol, rows in listed.items() if len(rows) > 1}
    assert not twice, f"symbols listed in more than one row: {twice}"

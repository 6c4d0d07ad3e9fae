"""The notebook a reader downloads: MyST-NB's executed notebook with its markdown cells rewritten
from MyST into the plain markdown Jupyter renders.

Code cells and their outputs are kept as executed. In markdown, the code a page includes is
inlined, glued values are substituted, exercises and solutions become readable markdown (solution
code cells collapsed), citations become author-year text and cross-references their titles. A
MyST construct this module does not know is an error (`UnsupportedMyST`), not left raw: the page
and its download would drift apart silently. Pure (notebook in, notebook out), so that tests need
no Sphinx build; sphinx, myst_nb and pybtex are used only as libraries, where they decide what the
page shows (the lines an include shows, a glued value's format, an author's printed name).
"""
from __future__ import annotations

import base64
import copy
import posixpath
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence


class UnsupportedMyST(ValueError):
    """A MyST construct in a markdown cell that the downloadable notebook cannot render."""


@dataclass(frozen=True)
class Page:
    """What the rewrite needs to know about the page beyond its notebook."""

    docname: str  # e.g. "book/a3c"; {doc} targets are relative to it
    source_dir: Path  # the page's source directory: {literalinclude} paths are relative to it
    glue: Mapping[str, dict] = field(default_factory=dict)  # glued outputs by name
    bibliography: Mapping[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    titles: Mapping[str, str] = field(default_factory=dict)  # docname -> title
    notebooks: frozenset = frozenset()  # docnames offered as notebooks: {doc} links to those
    labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # the book's labels:
    # label -> (docname, the text a reference shows), for references to other pages
    toc: Sequence[str] = ()  # the page's toctree children, for {tableofcontents}
    exec_table: str = ""  # the markdown table {nb-exec-table} stands for


def read_bibliography(paths) -> dict[str, tuple[tuple[str, ...], str]]:
    """Citation key -> (authors' last names, year), named as sphinxcontrib-bibtex's author_year
    style prints them (pybtex's "last" name style, LaTeX accents decoded)."""
    import pybtex.database
    import pybtex.plugin

    names = pybtex.plugin.find_plugin("pybtex.style.names", "last")()
    entries = {}
    for path in paths:
        for key, entry in pybtex.database.parse_file(str(path)).entries.items():
            persons = entry.persons.get("author") or entry.persons.get("editor", [])
            entries[key] = (tuple(names.format(p, True).format().render_as("text")
                                  for p in persons), entry.fields.get("year", ""))
    return entries


def downloadable(notebook: dict, page: Page) -> dict:
    """The notebook to download for `page`, from the notebook MyST-NB executed for it."""
    return _Rewriter(page).notebook(notebook)


# --- the block structure of a markdown cell -------------------------------------------------

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<arg>.*?)\s*$")
_TARGET = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")
_EQ_LABEL = re.compile(r"\$\$[ \t]*\((?P<label>[^()\s]+)\)[ \t]*$", re.M)
# a role, or a code span (whose content is literal, roles included); either may span lines
# within a paragraph
_INLINE = re.compile(r"\{(?P<role>[A-Za-z][\w:+.-]*)\}(?P<ticks>`+)(?P<content>(?:(?!\n\s*\n).)+?)"
                     r"(?P=ticks)(?!`)|(?P<code>`+)(?:(?!\n\s*\n).)+?(?P=code)(?!`)", re.S)
_EXPLICIT = re.compile(r"^(?P<text>.+?)\s*<(?P<target>[^<>]+)>$", re.S)
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")

_ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
                "attention": "Attention", "caution": "Caution", "warning": "Warning",
                "danger": "Danger", "error": "Error", "seealso": "See also"}
# directives whose argument is a title rather than the start of the content
_TITLED = {"admonition": "Note", "margin": "Margin", "sidebar": "Sidebar", "topic": "Topic",
           "dropdown": "Details"}


@dataclass
class _Directive:
    name: str
    arg: str
    options: dict
    content: list  # lines, with the fence's indentation removed
    indent: str


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _blocks(lines: list[str]) -> list:
    """The cell's lines as a list of text runs (lists of lines) and directives; fenced code that is
    not a directive is a text run too, marked verbatim by a leading None."""
    blocks, text, i = [], [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):  # an inline code span
            text.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if _closes(lines[j], m["fence"])),
                   len(lines))
        if text:
            blocks.append(text)
            text = []
        directive = _DIRECTIVE.match(m["info"].strip())
        if directive:
            indent = m["indent"]
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                    for line in lines[i + 1:end]]
            options, content = _options(body)
            blocks.append(_Directive(directive["name"], directive["arg"], options, content, indent))
        else:
            blocks.append([None] + lines[i:end + 1])
        i = end + 1
    if text:
        blocks.append(text)
    return blocks


def _options(body: list[str]) -> tuple[dict, list[str]]:
    """A directive's options and its content, split and parsed as myst-parser does (a `---`
    block or leading `:key: value` lines, values unquoted)."""
    from myst_parser.parsers.options import TokenizeError, options_to_items

    if body and body[0].startswith("---"):
        end = next((k for k in range(1, len(body)) if re.match(r"^-{3,}", body[k])), len(body))
        block, rest = textwrap.dedent("\n".join(body[1:end])), body[end + 1:]
    else:
        k = 0
        while k < len(body) and body[k].lstrip().startswith(":"):
            k += 1
        block, rest = "\n".join(line.lstrip()[1:] for line in body[:k]), body[k:]
    try:
        options = dict(options_to_items(block)[0])
    except TokenizeError as exc:
        raise UnsupportedMyST(f"directive options: {exc.problem}") from exc
    while rest and not rest[0].strip():
        rest = rest[1:]
    while rest and not rest[-1].strip():
        rest = rest[:-1]
    return options, rest


def _escape(text: str) -> str:
    """Plain text made literal in markdown (a glued value, as the page shows it). An underscore
    inside a word (a3c_cartpole) cannot emphasise, so it stays as it is, readable."""
    return re.sub(r"[\\`*$<\[\]|]|(?<![^\W_])_|_(?![^\W_])", lambda m: "\\" + m[0], text)


def _quote(title: str, body: str) -> str:
    lines = f"**{title}**\n\n{body}".rstrip("\n").split("\n")
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines)


def _details(body: str) -> str:
    # blank lines around the body, so that Jupyter renders it as markdown inside the HTML
    return f"<details><summary>Solution</summary>\n\n{body.strip()}\n\n</details>"


def _fenced(code: str, language: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


# --- the rewrite -----------------------------------------------------------------------------

class _Rewriter:
    def __init__(self, page: Page):
        self.page = page
        self.labels: dict[str, str] = {}  # label -> the text a reference to it shows
        self.equations = 0
        self.pending: list[tuple[str, str, str]] = []  # (role, label, explicit text)
        self.solution = False  # inside solution-start ... solution-end
        self.attachments: dict = {}  # the current cell's

    def notebook(self, notebook: dict) -> dict:
        nb = copy.deepcopy(notebook)
        source_map = nb["metadata"].pop("source_map", None)  # lines of the .md, not of this
        cells = []
        for index, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "markdown":
                try:
                    cell = self.markdown_cell(cell)
                except UnsupportedMyST as exc:
                    line = f", near line {source_map[index]} of the source" if source_map else ""
                    raise UnsupportedMyST(f"{exc} (cell {index}{line})") from exc
                if cell is None:
                    continue
            elif cell["cell_type"] == "code" and self.solution:
                meta = cell.setdefault("metadata", {})
                meta.setdefault("jupyter", {}).update(source_hidden=True, outputs_hidden=True)
                meta["tags"] = [*meta.get("tags", []), "solution"]
            cells.append(cell)
        for cell in cells:  # references resolve once every label on the page is known
            if cell["cell_type"] == "markdown":
                cell["source"] = _PLACEHOLDER.sub(lambda m: self.resolve(int(m[1])), cell["source"])
        nb["cells"] = cells
        return nb

    def markdown_cell(self, cell: dict) -> dict | None:
        self.attachments = {}
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        parts: list[tuple[bool, str]] = []  # (inside a solution, markdown)
        for block in _blocks(source.split("\n")):
            if isinstance(block, _Directive) and block.name == "solution-start":
                parts.append((False, self.ref("solution", block.arg)))
                self.solution = True
            elif isinstance(block, _Directive) and block.name == "solution-end":
                self.solution = False
            else:
                parts.append((self.solution, self.block(block)))
        text, run = [], []
        for hidden, markdown in parts + [(False, None)]:
            if hidden:
                if markdown.strip():
                    run.append(markdown)
                continue
            if run:
                text.append(_details("\n\n".join(run)))
                run = []
            if markdown is not None:
                text.append(markdown)
        markdown = "\n\n".join(t.strip("\n") for t in text if t.strip())
        if not markdown:
            return None
        cell = {**cell, "source": markdown}
        if self.attachments:
            cell["attachments"] = self.attachments
        return cell

    def render(self, lines: list[str]) -> str:
        """Markdown for MyST lines inside a directive."""
        return "\n\n".join(self.block(b).strip("\n") for b in _blocks(lines))

    def block(self, block) -> str:
        if isinstance(block, _Directive):
            out = self.directive(block)
            return "\n".join(block.indent + line if line else line for line in out.split("\n"))
        if block[0] is None:  # fenced code: literal
            return "\n".join(block[1:])
        lines = []
        for k, line in enumerate(block):
            target = _TARGET.match(line)
            if not target:
                lines.append(line)
                continue
            following = next((n.strip() for n in block[k + 1:] if n.strip()), "")
            heading = following.startswith("#")
            self.labels[target["label"]] = (self.inline(following.lstrip("#").strip()) if heading
                                            else target["label"])
        return self.inline(_EQ_LABEL.sub(self.equation_label, "\n".join(lines)))

    def equation_label(self, m) -> str:
        return f"{self.number(m['label'])} $$"

    def number(self, label: str) -> str:
        """The \\tag of a labelled equation; Sphinx numbers them in order on each page."""
        self.equations += 1
        self.labels[label] = f"({self.equations})"
        return f"\\tag{{{self.equations}}}"

    # --- inline roles ---

    def inline(self, text: str) -> str:
        return _INLINE.sub(self.role, text)

    def role(self, m) -> str:
        name, content = m["role"], m["content"]
        if name is None:  # a code span
            return m[0]
        if name in ("glue", "glue:", "glue:any"):
            return self.glue_any(content, inline=True)
        if name == "glue:text":
            return self.glue_text(content)
        if name == "glue:md":
            return self.glued(content, "text/markdown")
        if name in ("cite", "cite:p", "cite:t"):
            return self.cite(content, textual=name == "cite:t")
        if name == "doc":
            return self.doc(content)
        if name in ("ref", "numref", "eq", "term", "prf:ref"):
            explicit = _EXPLICIT.match(content)
            if name == "term":
                return explicit["text"] if explicit else content
            if explicit:
                return self.ref(name, explicit["target"], explicit["text"])
            return self.ref(name, content)
        if name == "math":
            return f"${content}$"
        raise UnsupportedMyST(f"unsupported MyST role {{{name}}}")

    def ref(self, role: str, label: str, text: str = "") -> str:
        self.pending.append((role, label.strip(), text))
        return f"\x00{len(self.pending) - 1}\x00"

    def resolve(self, index: int) -> str:
        role, label, text = self.pending[index]
        if role == "solution":
            title = self.labels.get(label, "")
            shown = f"**Solution: {title}**" if title else "**Solution**"
        else:
            docname, title = ((self.page.docname, self.labels[label]) if label in self.labels
                              else self.page.labels.get(label, (self.page.docname, label)))
            shown = text.replace("%s", title) if text else title
            if docname != self.page.docname:  # on another page, as the page links it
                shown = self.link(docname, shown)
        return _PLACEHOLDER.sub(lambda m: self.resolve(int(m[1])), shown)  # a title's own refs

    def link(self, docname: str, text: str) -> str:
        """A link to another page's notebook, or just the text where it has none."""
        if docname not in self.page.notebooks:
            return text
        return f"[{text}]({posixpath.relpath(docname, posixpath.dirname(self.page.docname))}.ipynb)"

    def doc(self, content: str) -> str:
        explicit = _EXPLICIT.match(content)
        target = explicit["target"] if explicit else content
        here = posixpath.dirname(self.page.docname)
        docname = (target[1:] if target.startswith("/") else
                   posixpath.normpath(posixpath.join(here, target)))
        docname = re.sub(r"\.(md|ipynb)$", "", docname)
        if docname not in self.page.titles:
            raise UnsupportedMyST(f"{{doc}} to an unknown document {target!r}")
        return self.link(docname, explicit["text"] if explicit else self.page.titles[docname])

    def cite(self, content: str, textual: bool) -> str:
        cited = []
        for key in (k.strip() for k in content.split(",")):
            if key not in self.page.bibliography:
                raise UnsupportedMyST(f"citation key {key!r} is not in the bibliography")
            names, year = self.page.bibliography[key]
            authors = (names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2
                       else f"{names[0]} *et al.*")
            cited.append(f"{authors} [{year}]" if textual else f"{authors}, {year}")
        return ", ".join(cited) if textual else f"[{', '.join(cited)}]"

    # --- glue ---

    def glue_output(self, key: str) -> dict:
        if "::" in key:
            raise UnsupportedMyST(f"glue from another page ({key!r}) is not supported")
        if key not in self.page.glue:
            raise UnsupportedMyST(f"no glued value named {key!r}")
        return self.page.glue[key]["data"]

    def glued(self, key: str, mime: str) -> str:
        data = self.glue_output(key)
        if mime not in data:
            raise UnsupportedMyST(f"the glued value {key!r} has no {mime}")
        return _text(data[mime])

    def glue_text(self, content: str) -> str:
        from myst_nb.core.variables import format_plain_text  # what {glue:text} shows

        if "::" in content:
            raise UnsupportedMyST(f"glue from another page ({content!r}) is not supported")
        key, _, spec = content.rpartition(":") if ":" in content else (content, "", "s")
        return _escape(format_plain_text(self.glued(key, "text/plain"), spec))

    def glue_any(self, key: str, inline: bool, alt: str = "") -> str:
        """A glued output in MyST-NB's order of preference for HTML."""
        data = self.glue_output(key)
        for mime in ("text/html", "image/svg+xml", "image/png", "image/jpeg"):
            if mime in data:
                if mime == "text/html":
                    return _text(data[mime])
                return self.attach(key, mime, data[mime], alt or key)
        if "text/markdown" in data:
            return _text(data["text/markdown"])
        if "text/latex" in data:
            from myst_nb.core.render import strip_latex_delimiters

            latex = strip_latex_delimiters(_text(data["text/latex"]))
            return f"${latex}$" if inline else f"$$\n{latex}\n$$"
        return _escape(_text(data.get("text/plain", "")))

    def attach(self, key: str, mime: str, data, alt: str) -> str:
        name = re.sub(r"[^\w.-]", "_", key) + {"image/svg+xml": ".svg", "image/png": ".png",
                                               "image/jpeg": ".jpg"}[mime]
        if mime == "image/svg+xml":  # notebooks keep SVG as text, attachments as base64
            data = base64.b64encode(_text(data).encode()).decode()
        self.attachments[name] = {mime: _text(data).replace("\n", "")}
        return f"![{alt}](attachment:{name})"

    # --- directives ---

    def directive(self, d: _Directive) -> str:
        name = d.name
        if name == "literalinclude":
            return self.literalinclude(d)
        if name in ("glue", "glue:", "glue:any"):
            return self.glue_any(d.arg, inline=False)
        if name == "glue:md":
            return self.glued(d.arg, "text/markdown")
        if name == "glue:math":
            from myst_nb.core.render import strip_latex_delimiters

            latex = strip_latex_delimiters(self.glued(d.arg, "text/latex"))
            return self.math(latex, d.options.get("label", d.options.get("name")))
        if name == "glue:figure":
            figure = self.glue_any(d.arg, inline=False, alt=d.options.get("alt", ""))
            caption = self.render(d.content)
            return f"{figure}\n\n{caption}" if caption else figure
        if name == "math":
            label = d.options.get("label", d.options.get("name"))
            return self.math("\n".join(([d.arg] if d.arg else []) + d.content), label)
        if name == "exercise":
            title = self.inline(d.arg)
            if "label" in d.options:
                self.labels[d.options["label"]] = title
            heading = f"**Exercise: {title}**" if title else "**Exercise**"
            return f"{heading}\n\n{self.render(d.content)}"
        if name == "solution":
            return f"{self.ref('solution', d.arg)}\n\n{_details(self.render(d.content))}"
        if name.startswith("prf:"):
            kind, title = name[4:].capitalize(), self.inline(d.arg)
            if "label" in d.options:
                self.labels[d.options["label"]] = title or kind
            return _quote(f"{kind}: {title}" if title else kind, self.render(d.content))
        if name in _ADMONITIONS:
            return _quote(_ADMONITIONS[name], self.render(([d.arg] if d.arg else []) + d.content))
        if name in _TITLED:
            return _quote(self.inline(d.arg) or _TITLED[name], self.render(d.content))
        if name == "tableofcontents":
            return "\n".join(f"- {self.doc('/' + docname)}" for docname in self.page.toc)
        if name == "nb-exec-table":
            return self.page.exec_table
        raise UnsupportedMyST(f"unsupported MyST directive {{{name}}}")

    def math(self, latex: str, label: str | None) -> str:
        tag = f"\n{self.number(label)}" if label else ""
        return f"$$\n{latex.strip()}{tag}\n$$"

    def literalinclude(self, d: _Directive) -> str:
        """The lines the page shows, read by Sphinx's own reader with the directive's options."""
        from sphinx.directives.code import LiteralInclude, LiteralIncludeReader

        options = {}
        for key, value in d.options.items():
            if key not in LiteralInclude.option_spec:
                raise UnsupportedMyST(f"unknown {{literalinclude}} option :{key}:")
            options[key] = LiteralInclude.option_spec[key](value or None)
        path = self.page.source_dir / d.arg
        if "diff" in options:
            options["diff"] = str(self.page.source_dir / options["diff"])
        try:
            code, _ = LiteralIncludeReader(str(path), options,
                                           SimpleNamespace(source_encoding="utf-8-sig")).read()
        except (OSError, ValueError) as exc:
            raise UnsupportedMyST(f"{{literalinclude}} {d.arg}: {exc}") from exc
        language = options.get("language") or ("python" if path.suffix == ".py" else "")
        caption = f"*{options['caption']}*\n\n" if options.get("caption") else ""
        return caption + _fenced(code, language)


def _text(value) -> str:
    return value if isinstance(value, str) else "".join(value)

"""The book's reference page, generated from the package itself: each algorithm's options with
their defaults and meanings (config.py's `option` sentences, which also give the CLI's --help),
and the tuned presets with their sources."""
from __future__ import annotations

import inspect

from ..algos import ALGORITHMS
from ..presets import PRESETS


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def options_table(algo: str) -> str:
    """A Markdown table of the algorithm's config fields: option, default, meaning."""
    rows = ["| option | CLI | default | meaning |", "|---|---|---|---|"]
    for f in ALGORITHMS[algo].Config.describe():
        flag = "--steps" if f["name"] == "total_steps" else "--" + f["name"].replace("_", "-")
        rows.append(f"| `{f['name']}` | `{flag}` | `{_cell(f['default'])}` | {_cell(f['doc'])} |")
    return "\n".join(rows)


def presets_table() -> str:
    """A Markdown table of the tuned presets: algorithm, env, settings, where they came from."""
    rows = ["| algorithm | env | settings | source |", "|---|---|---|---|"]
    for (algo, env), preset in PRESETS.items():
        settings = ", ".join(f"`{k}={v}`" for k, v in preset.settings.items())
        rows.append(f"| `{algo}` | `{env}` | {settings} | {_cell(preset.source)} |")
    return "\n".join(rows)


def signature(obj, name: str) -> str:
    """`name(signature)` and the docstring, as `help` would show them."""
    return f"{name}{inspect.signature(obj)}\n\n{inspect.getdoc(obj)}\n"

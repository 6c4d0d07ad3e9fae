"""Videos on the book's pages: MP4 files recorded by `Run.video` (or `python -m asyncrl_lab
video`), carried inside the page so that the built book needs no file beside it."""
from __future__ import annotations

import base64
import html
from pathlib import Path


def videos_side_by_side(videos: dict, width: int = 240):
    """Each video (caption -> MP4 path) inline, side by side, looping without sound; returns an
    IPython HTML object for a cell's output."""
    from IPython.display import HTML

    cells = []
    for caption, path in videos.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        cells.append(
            f'<figure style="display:inline-block;margin:0 1em 0 0;text-align:center">'
            f'<video width="{width}" autoplay loop muted playsinline controls '
            f'src="data:video/mp4;base64,{data}"></video>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return HTML("<div>" + "".join(cells) + "</div>")

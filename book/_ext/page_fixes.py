"""Two fixes to the theme's pages, so that a browser logs no error on any page.

- sphinx-thebe adds its configuration script (`const THEBE_JS_URL = ...`) each time Sphinx reads
  documents, and a build that reads twice adds it twice: the browser then logs "Identifier
  'THEBE_JS_URL' has already been declared". Later copies of a script already on the page are
  dropped.
- pydata-sphinx-theme starts a first visit (nothing in localStorage) in the mode
  `{{ default_mode }}`, which sphinx-book-theme leaves empty, and logs "Got invalid theme mode".
  The page gets "auto", the theme's own fallback.
"""


def _fix_page(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # an inline script's filename is None or "" depending on who added it
        key = (getattr(script, "filename", None) or "", repr(getattr(script, "attributes", None)))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept
    context["default_mode"] = context.get("default_mode") or "auto"


def setup(app):
    app.connect("html-page-context", _fix_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""The built book in a real browser: headless Chromium (Debian's package, which `make test`
installs) loads every page of the quick build from a server on loopback, with every request that
would leave the machine refused. Each page must typeset its math, load every figure and log no
console error; a solution dropdown opens when clicked. A screenshot of A3C's key equations is kept
in _build/screenshots/ for a person to look at."""
import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

import helpers

pytestmark = pytest.mark.slow

ROOT = Path(helpers.ROOT)
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "_build" / "screenshots"
# Without the background-networking flags Chromium phones home at start; this machine refuses it.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(quick_book):
    """The quick build's HTML served on a free loopback port."""
    handler = functools.partial(_Quiet, directory=str(quick_book / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it"
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def open_page(browser, url, *, width=1280, height=900):
    """Load `url` with every off-machine request refused; return the page and what it logged."""
    page = browser.new_page(viewport={"width": width, "height": height})
    log = {"refused": [], "errors": []}

    def route(r):
        if urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            log["refused"].append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and log["errors"].append(m.text))
    page.on("pageerror", lambda e: log["errors"].append(str(e)))
    page.goto(url, wait_until="load")
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    return page, log


@pytest.mark.parametrize("name", helpers.book_pages())
def test_page_typesets_math_loads_figures_and_stays_offline(browser, site, name):
    page, log = open_page(browser, f"{site}/{name}.html")
    math = page.evaluate("""() => Array.from(document.querySelectorAll('.math')).map(
        m => m.querySelector('mjx-container') !== null)""")
    # a display formula wider than the text column is cut off at 1280 px
    too_wide = page.evaluate("""() => Array.from(document.querySelectorAll(
        'mjx-container[display="true"]')).filter(m => m.firstElementChild.getBoundingClientRect()
        .width > m.parentElement.getBoundingClientRect().width + 1).map(m => m.textContent)""")
    images = page.evaluate("""() => Array.from(document.images).map(
        i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])""")
    page.close()
    assert not log["refused"], f"requests that would leave the machine: {log['refused']}"
    assert not log["errors"], f"console errors: {log['errors']}"
    assert all(math), f"{math.count(False)} of {len(math)} formulas not typeset"
    assert [src for src, loaded in images if not loaded] == []
    assert len(too_wide) == 0, f"{len(too_wide)} display formulas wider than the column"
    if name in helpers.book_pages(back_matter=False):
        assert math, "a chapter with no typeset formula"


def test_a_solution_dropdown_opens_and_the_key_equations_are_typeset(browser, site):
    # tall enough that the section fits: a scrolled capture would show the sticky header over it
    page, log = open_page(browser, f"{site}/book/a3c.html", height=2400)
    solution = page.locator(".solution.dropdown").first
    body = solution.locator(".admonition-title ~ *").first
    assert not body.is_visible()
    # the title's left end: its right part links to the exercise
    solution.locator(".admonition-title").click(position={"x": 10, "y": 10})
    body.wait_for(state="visible", timeout=5000)
    equations = page.locator("#key-equations")
    assert equations.locator("mjx-container").count() >= 3
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    equations.screenshot(path=str(SCREENSHOTS / "a3c-key-equations.png"))
    page.close()
    assert not log["errors"] and not log["refused"]


def test_figures_fit_a_phone_screen(browser, site):
    """At a phone's width (390 px) no figure is wider than the screen."""
    page, _ = open_page(browser, f"{site}/book/a3c.html", width=390)
    too_wide = page.evaluate("""() => Array.from(document.querySelectorAll('img')).filter(
        i => i.getBoundingClientRect().width > window.innerWidth).map(i => i.src)""")
    page.close()
    assert too_wide == []

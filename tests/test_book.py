"""The book and the slides, built as a newcomer builds them: from a fresh checkout, at the quick scale.

One module fixture copies the files git tracks (and the new files it does not ignore) into a temporary folder, the
way a fresh clone looks, and runs ``python -m book.build book`` and then ``slides all`` there (what
``python3 course.py book`` and ``slides all`` run after the set-up). The tests then read the site and the slides:

- every lecture executed without an error and its page holds every figure its notebook drew (the images counted in
  the executed notebook's outputs and on the page), each panel's figure with the sentence that the notebook makes it
  interactive;
- no internal link or image is broken (every ``href`` and ``src`` of every page, fragments included);
- no line of an answer or of a hidden test appears anywhere in the site (pages, search index, downloads), and no
  line of a test-only cell appears on a lecture's page or slides;
- the questions' answers are folded, the exercises' notebooks can be downloaded, search and equations are there,
  and nothing is loaded from the network;
- the slides of every lecture have a slide per section and one per figure, speaker notes for the long prose, and
  load reveal.js and MathJax from beside them;
- in Chromium, the front page and a lecture page render their equations and show a figure, and a lecture's slides
  start; screenshots go to build/browser/.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from book.build import companions, figures, for_book, has_figure
from book.cells import PANEL_SHOWN, TEST_ONLY
from course_lib.exercises import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION

ROOT = Path(__file__).resolve().parent.parent
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
SCREENSHOTS = ROOT / "build" / "browser"
BUILD_TIMEOUT_S = 1800
DISTINCTIVE = 16  # a line shorter than this (``return x``, ``else:``) says nothing about where it came from


def fresh_checkout(target: Path) -> Path:
    """The files a fresh clone has (tracked, and new ones git does not ignore), copied to ``target``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The checkout, its book and its slides (the build's output is kept in build/book-test.log for a failure)."""
    checkout = fresh_checkout(tmp_path_factory.mktemp("checkout"))
    log = []
    for command in (["book"], ["slides", "all"]):
        run = subprocess.run([sys.executable, "-m", "book.build", *command, "--scale", "quick"], cwd=checkout,
                             capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        log.append(f"$ python -m book.build {' '.join(command)}\n{run.stdout}\n{run.stderr}")
        (ROOT / "build").mkdir(exist_ok=True)
        (ROOT / "build" / "book-test.log").write_text("\n".join(log))
        assert run.returncode == 0, f"book.build {' '.join(command)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return {"book": checkout / "build" / "book", "slides": checkout / "build" / "slides",
            "executed": checkout / "build" / "executed" / "quick", "log": "\n".join(log)}


class Page(HTMLParser):
    """A page's links, images, ids, text and the <details> blocks' text."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.links, self.images, self.ids, self.text, self.folded = [], [], set(), [], []
        self._details = 0
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            (self.images if tag == "img" else self.links).append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "details":
            self._details += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self._details -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._details:
            self.folded.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def code_lines(source: str) -> set[str]:
    return {line.strip() for line in source.splitlines() if len(line.strip()) >= DISTINCTIVE}


def between(source: str, begin: str, end: str) -> set[str]:
    """The distinctive lines between each pair of markers."""
    found = re.findall(re.escape(begin) + r"(.*?)" + re.escape(end), source, re.DOTALL)
    return set().union(*(code_lines(block) for block in found)) if found else set()


def secret_lines() -> dict[str, set[str]]:
    """Per solution notebook: the lines of its answers and hidden tests that no public notebook shows."""
    public = set()
    for path in [*LECTURES, *EXERCISES]:
        for cell in nbformat.read(path, as_version=4).cells:
            public |= code_lines(cell.source)
    secrets = {}
    for path in SOLUTIONS:
        text = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        secrets[path.name] = (between(text, BEGIN_SOLUTION, END_SOLUTION) | between(text, BEGIN_HIDDEN, END_HIDDEN)) - public
    return secrets


def site_texts(book: Path):
    """(path, text) of every text file of the site: pages by their text, notebooks by their cells, the rest as is."""
    for path in sorted(book.rglob("*")):
        if path.is_dir() or "mathjax" in path.relative_to(book).parts:
            continue
        if path.suffix == ".html":
            yield path, html.unescape(Page(path).all_text)
        elif path.suffix == ".ipynb":
            yield path, "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        elif path.suffix in (".js", ".txt", ".md", ".json", ".css"):
            yield path, path.read_text(encoding="utf-8", errors="replace")


def leaked(text: str, secrets: set[str]) -> list[str]:
    """The secret lines that are lines of ``text`` (whole lines: a fragment of a longer public line is no leak)."""
    return sorted(secrets & {line.strip() for line in text.splitlines()})


def test_the_book_builds_from_a_fresh_checkout_without_an_execution_error(built):
    assert (built["book"] / "index.html").exists() and (built["book"] / ".nojekyll").exists()
    assert "Traceback" not in built["log"] and "Error" not in built["log"].replace("BuildError", "")
    for lecture in LECTURES:
        executed = nbformat.read(built["executed"] / lecture.name, as_version=4)
        errors = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs
                  if output.output_type == "error"]
        assert errors == [], f"{lecture.name} executed with errors"
        assert all(cell.execution_count for cell in executed.cells if cell.cell_type == "code" and cell.source.strip())


@pytest.mark.parametrize("lecture", LECTURES, ids=lambda path: path.stem)
def test_every_lecture_page_holds_the_figures_its_notebook_draws(built, lecture):
    executed = nbformat.read(built["executed"] / lecture.name, as_version=4)
    page = Page(built["book"] / "lectures" / f"{lecture.stem}.html")
    drawn = figures(executed)
    panels = sum(1 for cell in nbformat.read(lecture, as_version=4).cells if cell.cell_type == "code"
                 and PANEL_SHOWN.match(cell.source.strip().splitlines()[-1]))
    assert drawn >= max(panels, 1), f"{lecture.name} drew {drawn} figures for {panels} panels"
    assert figures(for_book(executed)) == drawn, "a figure the page would lose"
    shown = [src for src in page.images if "_images/" in src]
    assert len(shown) == drawn, f"{lecture.name}: the notebook drew {drawn} figures, the page shows {len(shown)}"
    assert page.all_text.count("make the figure below interactive") == panels
    assert page.all_text.count("here it is drawn at their defaults") == panels
    for name, target in companions(lecture):  # the lecture leads on to its questions and exercise
        assert f"../{target.rsplit('.', 1)[0]}.html" in page.links, f"{lecture.stem} does not link its {name}"


def test_no_internal_link_or_image_of_the_site_is_broken(built):
    book = built["book"]
    pages = {path: Page(path) for path in book.rglob("*.html") if "_static" not in path.relative_to(book).parts}
    assert len(pages) >= len(LECTURES) + len(EXERCISES) + 10
    broken = []
    for path, page in pages.items():
        for link in page.links + page.images:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{path.relative_to(book)} → {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else Page(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(book)} → {link} (no such anchor)")
    assert broken == []
    index = pages[book / "index.html"]
    for lecture in LECTURES:
        assert f"lectures/{lecture.stem}.html" in index.links, f"the front page does not link {lecture.stem}"


def test_nothing_is_loaded_from_the_network(built):
    """Scripts, style sheets and images come with the site; links to other sites are only followed by a reader."""
    external = []
    for path in built["book"].rglob("*.html"):
        source = path.read_text(encoding="utf-8")
        external += [f"{path.name}: {url}" for url in re.findall(r'(?:src|href)="(https?://[^"]+)"', source)
                     if re.search(r"<(?:script|link|img)[^>]+" + re.escape(url), source)]
    for path in built["slides"].glob("*.slides.html"):
        source = path.read_text(encoding="utf-8")
        external += [f"{path.name}: {url}" for url in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', source)]
    assert external == []


def test_no_answer_or_hidden_test_line_appears_anywhere_in_the_site(built):
    secrets = secret_lines()
    for name, lines in secrets.items():  # the check has something to look for in every exercise
        assert len(lines) >= 5, f"{name}: only {len(lines)} distinctive answer and hidden-test lines"
        solution = "\n".join(cell.source for cell in nbformat.read(ROOT / "solutions" / name, as_version=4).cells)
        assert leaked(solution, lines) == sorted(lines)  # and finds them where they are
    every_secret = set().union(*secrets.values())
    found = {str(path.relative_to(built["book"])): leaked(text, every_secret) for path, text in site_texts(built["book"])}
    assert {path: lines for path, lines in found.items() if lines} == {}
    assert len(found) > 40  # pages, notebooks to download, the search index


def test_exercise_pages_show_the_exercise_and_offer_its_notebook(built):
    for exercise in EXERCISES:
        page = Page(built["book"] / "exercises" / f"{exercise.stem}.html")
        text = page.all_text
        assert "raise NotImplementedError" in text and "YOUR CODE HERE" in text
        downloads = [link for link in page.links if re.fullmatch(rf"\.\./_downloads/\w+/{exercise.name}", link)]
        assert downloads, f"{exercise.stem}: no link to download {exercise.name}"
        offered = (built["book"] / "exercises" / downloads[0]).resolve()
        assert offered.read_bytes() == exercise.read_bytes()


def test_questions_pages_keep_the_answers_folded(built):
    questions = sorted((built["book"] / "questions").glob("*.html"))
    assert len(questions) == len(LECTURES) - 1  # the appendix has no questions
    for path in questions:
        page = Page(path)
        folded = "".join(page.folded)
        assert "Hints and answers" in folded and len(folded) > 400, f"{path.name}: the answers are not folded"
        first_answer = folded.split("(open them after thinking)", 1)[1].strip()[:60]
        assert first_answer and page.all_text.count(first_answer) == 1  # only inside the fold
        assert f"../lectures/{path.stem}.html" in page.links


def test_test_only_cells_are_hidden_from_pages_and_left_out_of_slides(built):
    for lecture in LECTURES:
        cells = nbformat.read(lecture, as_version=4).cells
        shown = set().union(*(code_lines(cell.source) for cell in cells
                              if cell.cell_type == "code" and TEST_ONLY not in cell.metadata.get("tags", [])))
        hidden = set().union(*(code_lines(cell.source) for cell in cells if TEST_ONLY in cell.metadata.get("tags", []))) - shown
        page = html.unescape(Page(built["book"] / "lectures" / f"{lecture.stem}.html").all_text)
        slides = html.unescape(Page(built["slides"] / f"{lecture.stem}.slides.html").all_text)
        assert leaked(page, hidden) == [] and leaked(slides, hidden) == []
        assert len(leaked(page, shown)) > 0.9 * len(shown)  # the rest of the code is there


def test_search_and_equations_are_in_the_site(built):
    book = built["book"]
    assert (book / "search.html").exists()
    index = (book / "searchindex.js").read_text(encoding="utf-8")
    for term in ("momentum", "dropout", "residu", "quantiz"):
        assert term in index
    assert (book / "_static" / "mathjax" / "es5" / "tex-svg-full.js").exists()
    page = (book / "lectures" / "01_batch_sgd.html").read_text(encoding="utf-8")
    assert page.count('class="math notranslate nohighlight"') > 20 and 'src="../_static/mathjax/es5/tex-svg-full.js' in page


@pytest.mark.parametrize("lecture", LECTURES, ids=lambda path: path.stem)
def test_slides_have_a_slide_per_section_and_per_figure(built, lecture):
    cells = nbformat.read(lecture, as_version=4).cells
    path = built["slides"] / f"{lecture.stem}.slides.html"
    source = path.read_text(encoding="utf-8")
    text = html.unescape(Page(path).all_text)
    sections = [re.sub(r"[`*]", "", cell.source.strip().splitlines()[0].lstrip("#").strip()) for cell in cells
                if cell.cell_type == "markdown" and re.match(r"#{1,3} ", cell.source.strip())]
    figure_slides = sum(1 for cell in cells if cell.metadata.get("slideshow", {}).get("slide_type") == "subslide"
                        and cell.cell_type == "code")
    for heading in sections:
        assert heading in text, f"{lecture.stem}: no slide for {heading!r}"
    assert source.count("<section") >= len(sections) + figure_slides
    executed = nbformat.read(built["executed"] / lecture.name, as_version=4)
    assert source.count('src="data:image/png;base64,') == figures(executed)
    drew = [index for index, cell in enumerate(executed.cells) if has_figure(cell)]
    starts = [index for index, cell in enumerate(cells)
              if cell.cell_type == "code" and cell.metadata["slideshow"]["slide_type"] == "subslide"]
    assert drew == starts, f"{lecture.stem}: the cells that drew a figure and the cells that start a figure's slide differ"
    assert not [line for line in text.splitlines() if line.strip().startswith("assert ")]
    notes = sum(1 for cell in cells if cell.metadata.get("slideshow", {}).get("slide_type") == "notes")
    assert source.count('<aside class="notes">') == notes
    assert 'src="reveal.js/dist/reveal.js"' in source and 'src="mathjax/es5/tex-svg-full.js"' in source
    assert (built["slides"] / "reveal.js" / "plugin" / "notes" / "notes.js").exists()


# ------------------------------------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def browser():
    from test_browser import chromium_executable

    if chromium_executable() is None:
        pytest.skip("no Chromium found (install Debian's `chromium` package, or set COURSE_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox"])
        yield browser
        browser.close()


def open_offline(browser, url: str):
    """A page that refuses every request to the network and records it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    network = []

    def refuse(route):
        network.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^https?://"), refuse)
    page.goto(url)
    return page, network


def wait_for_mathjax(page) -> int:
    """Wait until MathJax has typeset the page; return the number of typeset equations (a TeX error fails)."""
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
    page.evaluate("() => MathJax.startup.promise")
    assert page.locator("[data-mml-node='merror'], mjx-merror").count() == 0
    return page.locator("mjx-container svg").count()


def test_in_a_browser_the_book_renders_equations_and_figures(built, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    front, network = open_offline(browser, (built["book"] / "index.html").as_uri())
    assert front.locator("h1").first.inner_text().startswith("Going Deeper")
    assert front.locator("article a[href^='lectures/']").count() >= len(LECTURES)
    front.screenshot(path=str(SCREENSHOTS / "book_front_page.png"))
    lecture, more = open_offline(browser, (built["book"] / "lectures" / "04_batchnorm.html").as_uri())
    assert wait_for_mathjax(lecture) > 20
    assert "$$" not in lecture.locator("article").inner_text()
    lecture.screenshot(path=str(SCREENSHOTS / "book_lecture_04.png"))
    figure = lecture.locator("article img").first
    figure.scroll_into_view_if_needed()
    assert figure.is_visible() and figure.evaluate("img => img.complete && img.naturalWidth > 200")
    box = figure.bounding_box()
    assert box["width"] > 200 and box["height"] > 100
    lecture.screenshot(path=str(SCREENSHOTS / "book_lecture_04_figure.png"))
    search, searched = open_offline(browser, (built["book"] / "search.html").as_uri() + "?q=momentum")
    search.wait_for_function("() => document.querySelectorAll('#search-results ul.search li').length >= 3", timeout=30_000)
    assert search.locator("#search-results a[href*='02_momentum_adam']").count() >= 1
    search.screenshot(path=str(SCREENSHOTS / "book_search.png"))
    assert network + more + searched == []


def test_in_a_browser_a_lectures_slides_start(built, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    slides, network = open_offline(browser, (built["slides"] / "01_batch_sgd.slides.html").as_uri())
    slides.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
    assert slides.evaluate("() => Reveal.getTotalSlides()") >= 10
    slides.screenshot(path=str(SCREENSHOTS / "slides_01_title.png"))
    slides.evaluate("() => { Reveal.configure({transition: 'none'}); Reveal.slide(1); }")
    assert wait_for_mathjax(slides) > 0
    slides.screenshot(path=str(SCREENSHOTS / "slides_01_section_1.png"))
    assert network == []

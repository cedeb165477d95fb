"""--report: the HTML page of a real run opened in headless Chromium (Debian's package, which .ci/run
installs), driven by Playwright: no console error, no request but the page itself, and the DOM holds the
table with its Relative column, the verdicts, the figures, the comparison and the machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import mnist_compare_command as mnist_compare

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As this machine's probe starts Chromium: without the background-networking flags it calls Google's hosts.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SWEEP = ["--compare_nets", "--repeats", "2", "--hidden_size", "32,64", "--number_epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; in CI a missing browser fails (it is installed by .ci/run), elsewhere it skips."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS[1:])
        yield launched
        launched.close()


def open_page(browser, path: Path, screenshot: Path):
    """(page, console messages and page errors, URLs requested) after loading `path` and taking a screenshot."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    messages, requests = [], []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    page.screenshot(path=str(screenshot), full_page=True)
    return page, messages, requests


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory) -> tuple[Path, Path]:
    """The report of a --compare_nets --repeats 2 --hidden_size 32,64 run against a baseline of hidden 32."""
    folder = tmp_path_factory.mktemp("report")
    base = folder / "base.json"
    done = mnist_compare("--compare_nets", "--hidden_size", "32", "--number_epochs", "2", "--repeats", "3", "--seed",
                         "1", "--quiet", "--output", base)
    assert done.returncode == 0, done.stderr
    done = mnist_compare(*SWEEP, "--seed", "7", "--baseline", base, "--report", folder / "report.html",
                         "--output", folder / "new.json")
    assert done.returncode in (0, 8), done.stderr  # 8: a time judged worse on a busy machine, which the page shows
    assert json.loads((folder / "new.json").read_text())["baseline_comparison"]["regression"] == (done.returncode == 8)
    return folder / "report.html", folder


def test_the_report_opens_with_no_console_error_and_no_request(browser, sweep_report):
    report, folder = sweep_report
    page, messages, requests = open_page(browser, report, folder / "report.png")
    assert messages == []
    assert requests == [report.as_uri()]  # the page itself; its figures are data URIs
    assert (folder / "report.png").stat().st_size > 10_000
    page.close()


def test_the_report_holds_the_table_with_relative_verdicts_figures_and_machine(browser, sweep_report):
    report, folder = sweep_report
    page, _, _ = open_page(browser, report, folder / "report2.png")
    headers = page.locator("#results table th").all_inner_texts()
    assert headers[:3] == ["hidden_size", "Net", "Time(s)"] and "Relative" in headers
    rows = page.locator("#results table tbody tr").all()
    assert len(rows) == 4
    cells = [row.locator("td").all_inner_texts() for row in rows]
    relative = headers.index("Relative")
    assert [c[relative] for c in cells[::2]] == ["1.00", "1.00"] and all("±" in c[relative] for c in cells[1::2])
    assert page.locator("#results ul:not(.warning) li").count() == 2  # one verdict line per hidden size (a busy
    # machine adds warnings in their own list)
    images = page.locator("#curves img")
    assert images.count() == 4  # learning curves and time per epoch, per hidden size
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 300)")
    assert page.locator("#confusion table").count() == 4
    assert "Holm's correction" in page.locator("#baseline").inner_text()
    assert "only in this run" in page.locator("#baseline").inner_text()  # hidden 64 is not in the baseline
    machine = page.locator("#machine table").inner_text()
    assert "BLAS" in machine and "openblas" in machine and "numpy" in machine and "site-packages" not in machine
    assert page.locator("script").count() == 0 and page.locator("link").count() == 0
    page.close()


def test_a_check_report_holds_the_check_table(browser, tmp_path):
    report = tmp_path / "check.html"
    done = mnist_compare("--check", "--hidden_size", "16", "--seed", "0", "--report", report, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    page, messages, requests = open_page(browser, report, tmp_path / "check.png")
    assert messages == [] and requests == [report.as_uri()]
    names = [row[0] for row in (r.locator("td").all_inner_texts() for r in page.locator("#checks tr").all()) if row]
    assert "gradients" in names and "trajectory" in names
    page.close()


def test_a_report_path_must_end_in_html(tmp_path):
    done = mnist_compare("--report", tmp_path / "report.pdf", "--number_epochs", "1")
    assert done.returncode == 2 and "must be .html" in done.stderr


def test_the_readmes_ci_report_is_paste_ready(browser, tmp_path):
    """The README's CI example (its two steps, smaller), typed with relative paths in the run's directory: a
    title, a one-sentence summary on top, the command as typed, only the options given (the others folded),
    no absolute path anywhere, numbered captioned figures each with its PNG, coloured verdicts, and a print
    stylesheet that hides the PNG links."""
    quick = ["--compare_nets", "--hidden_size", "32", "--number_epochs", "2", "--repeats", "2", "--seed", "1"]
    base = subprocess.run([sys.executable, "-m", "mnist_compare", *quick, "--quiet", "--output", "base.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert base.returncode == 0, base.stderr
    done = subprocess.run([sys.executable, "-m", "mnist_compare", *quick, "--baseline", "base.json", "--margin", "0.5",
                           "--max_slowdown", "25", "--output", "new.json", "--report", "report.html", "--report_title",
                           "Net vs Keras, seed 1", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode in (0, 8), done.stderr
    html = (tmp_path / "report.html").read_text()
    assert str(tmp_path) not in html and sys.prefix not in html and "/home/" not in html
    page, messages, requests = open_page(browser, tmp_path / "report.html", tmp_path / "report.png")
    assert messages == [] and requests == [(tmp_path / "report.html").as_uri()]
    assert page.title() == "Net vs Keras, seed 1" and page.locator("h1").inner_text() == "Net vs Keras, seed 1"
    summary = page.locator("p.summary").inner_text()
    assert summary.startswith("my_net trained") and "keras_net" in summary and "regression" in summary
    command = page.locator("#command pre").inner_text()
    assert command.startswith("python -m mnist_compare --compare_nets") and "--report report.html" in command
    shown = page.locator("#settings > table td").all_inner_texts()
    assert {"hidden_size", "repeats", "baseline", "report_title", "seed"} <= set(shown)
    assert "blas_threads" not in shown and "blas_threads" in page.locator("#settings details").text_content()
    captions = page.locator("figcaption").all_inner_texts()
    assert captions[0].startswith("Figure 1. Training loss and accuracy per epoch") and captions[1].startswith(
        "Figure 2. Time per epoch")
    links = page.locator("figcaption a.png")
    assert links.count() == 2 and links.first.get_attribute("download") == "figure-1.png"
    assert links.first.get_attribute("href").startswith("data:image/png;base64,iVBORw0KGgo")  # the PNG signature
    assert page.locator("#baseline td.same, #baseline td.better, #baseline td.worse, "
                        "#baseline td.inconclusive").count() >= 2  # accuracy and speed, per net
    assert links.first.is_visible()
    page.emulate_media(media="print")
    assert not links.first.is_visible() and page.locator("figure").first.is_visible()
    page.close()

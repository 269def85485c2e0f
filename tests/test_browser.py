"""The lectures as a student meets them: JupyterLab in a real browser (Chromium driven by Playwright).

A session fixture starts JupyterLab on a free loopback port, with a token, private Jupyter directories, settings
that silence the news and update pop-ups and switch autosave off, serving a throw-away copy of lectures/ and
exercises/. Each test opens a notebook, waits for a connected, idle kernel (the toolbar's "idle" indicator is not
enough: it reads idle before a kernel exists), runs every cell, and reads the notebook's outputs from JupyterLab's own
model. Slider tests move a control with the keyboard and with the mouse and check that the experiment ran again:
the figure (its image data) and the printed text change, and the kernel-side panel saw the new value.

Screenshots of what the student sees are saved in build/browser/ (ignored by git). Every wait is bounded.

Needs Debian's ``chromium`` (or ``COURSE_CHROMIUM`` naming a Chromium/Chrome binary) and the ``playwright`` Python
package; without them these tests are skipped with the reason. ``playwright install`` is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course_lib.exercises import first_hint

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "browser"
LECTURES = sorted(p.name for p in (ROOT / "lectures").glob("[0-9][0-9]_*.ipynb"))
TOKEN = "course-browser-test"
SERVER_START_S = 120
KERNEL_READY_S = 180
RUN_ALL_S = {"07_ginfty.ipynb": 900}  # the g_∞ lecture trains for about a minute in quick mode
RUN_ALL_DEFAULT_S = 600


def chromium_executable() -> str | None:
    configured = os.environ.get("COURSE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(settings_dir: Path) -> None:
    """No news or update notifications, no autosave: the served copies stay as they were."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    }
    for relative, content in files.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


def copy_notebooks(source: Path, target: Path) -> None:
    """Copies with every output and execution count removed (no stale widget state)."""
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, target / path.name)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), wait, then SIGKILL whatever is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def lab_url(tmp_path_factory):
    """The URL of a private JupyterLab serving copies of lectures/ and exercises/; stopped by process id."""
    if chromium_executable() is None:
        pytest.skip("no Chromium found (install Debian's `chromium` package, or set COURSE_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    base = tmp_path_factory.mktemp("jupyterlab")
    served = base / "course"
    copy_notebooks(ROOT / "lectures", served / "lectures")
    copy_notebooks(ROOT / "exercises", served / "exercises")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels choose inline plots themselves
    env.update(COURSE_SCALE="quick", JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(base / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
               JUPYTER_NO_CONFIG="1")
    write_settings(base / "settings")
    port = free_port()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={served}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(base / "server.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}: {(base / 'server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s")
                time.sleep(0.5)
        yield url
    finally:
        stop_process_group(server)
        log.close()


@pytest.fixture(scope="session")
def browser(lab_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_executable(), headless=True, timeout=60_000,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def shut_down_kernels(lab_url: str) -> None:
    """Stop every kernel of the server (each lecture's kernel holds PyTorch and its data: hundreds of MB)."""
    kernels = json.loads(urllib.request.urlopen(f"{lab_url}/api/kernels?token={TOKEN}", timeout=10).read())
    for kernel in kernels:
        request = urllib.request.Request(f"{lab_url}/api/kernels/{kernel['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).read()


@pytest.fixture
def page(browser, lab_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1,
                                  timezone_id="UTC", reduced_motion="reduce")
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
        shut_down_kernels(lab_url)


# --- what a student does -------------------------------------------------------------------------------

KERNEL_READY = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session
                   && widget.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""

RUN_ALL = """() => {
    window.__courseRunAll = 'running';
    window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        () => { window.__courseRunAll = 'done'; }, error => { window.__courseRunAll = 'failed: ' + error; });
}"""

NOTEBOOK_STATE = """() => {
    const widget = window.jupyterapp.shell.currentWidget;
    const model = widget.content.model;
    const kernel = widget.sessionContext.session.kernel;
    const cells = [];
    for (let i = 0; i < model.cells.length; i++) {
        const cell = model.cells.get(i);
        if (cell.type !== 'code') continue;
        const outputs = cell.outputs.toJSON();
        cells.push({index: i, count: cell.executionCount,
                    errors: outputs.filter(o => o.output_type === 'error').map(o => ({ename: o.ename, evalue: o.evalue}))});
    }
    return {runAll: window.__courseRunAll, kernel: kernel && kernel.status, cells: cells};
}"""


def open_notebook(page, lab_url: str, path: str) -> None:
    page.goto(f"{lab_url}/lab/tree/{path}?token={TOKEN}&reset", wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function(KERNEL_READY, timeout=KERNEL_READY_S * 1000, polling=500)


def run_all(page, timeout_s: float) -> dict:
    """Run every cell; return the notebook's state once run-all has finished and the kernel is idle again."""
    page.evaluate(RUN_ALL)
    deadline = time.monotonic() + timeout_s
    while True:
        state = page.evaluate(NOTEBOOK_STATE)
        if state["runAll"] != "running" and state["kernel"] == "idle":
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"run-all did not finish within {timeout_s} s: {state['runAll']}, kernel "
                                 f"{state['kernel']}, {sum(c['count'] is not None for c in state['cells'])} of "
                                 f"{len(state['cells'])} code cells executed")
        time.sleep(1.0)


def kernel_output(page, code: str, timeout_s: float = 60) -> str:
    """Run ``code`` in the notebook's kernel, the way a student's extra cell would, and return what it printed."""
    return page.evaluate("""async ([code, timeout]) => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        let text = '';
        const future = kernel.requestExecute({code: code, store_history: false});
        future.onIOPub = msg => {
            if (msg.header.msg_type === 'stream') text += msg.content.text;
            if (msg.header.msg_type === 'error') text += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
        };
        await Promise.race([future.done, new Promise((_, reject) => setTimeout(() => reject('timeout'), timeout))]);
        return text;
    }""", [code, timeout_s * 1000])


def kernel_value(page, expression: str, changed_from: float, timeout_s: float = 60) -> float:
    """The number ``expression`` gives in the kernel once it differs from ``changed_from`` (a slider's new value
    reaches the kernel as a message of its own, which may arrive after a request sent just before it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = float(kernel_output(page, f"print({expression})"))
        if value != changed_from or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def panel_snapshot(panel) -> dict:
    """The panel's figure (image data) and printed text."""
    output = panel.locator(".widget-output")
    images = output.locator("img")
    return {"image": images.first.get_attribute("src") if images.count() else None,
            "text": output.inner_text()}


def wait_for_change(panel, before: dict, text: str | None = None, timeout_s: float = 120) -> dict:
    """Wait until the panel's figure and printed text differ from ``before`` (and the text contains ``text``)."""
    deadline = time.monotonic() + timeout_s
    now = before
    while time.monotonic() < deadline:
        now = panel_snapshot(panel)
        changed = now["image"] and now["image"] != before["image"] and now["text"] != before["text"]
        if changed and (text is None or text in now["text"]):
            return now
        time.sleep(0.5)
    raise AssertionError(f"the panel's figure and printed text did not change as expected (waiting for {text!r}); "
                         f"it shows: {now['text'][:500]}")


def slider(panel, label: str):
    """The noUiSlider of the control whose description is ``label``."""
    control = panel.locator(".widget-hslider, .widget-slider").filter(
        has=panel.page.locator(".widget-label", has_text=label))
    return control.first


def screenshot(page, name: str, top=None) -> None:
    """Save what the browser shows, with ``top`` (a locator) scrolled to the top of the notebook when given."""
    if top is not None:
        top.evaluate("element => element.scrollIntoView({block: 'start'})")
        time.sleep(0.5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


# --- the tests -----------------------------------------------------------------------------------------

def assert_ran_without_errors(page, lecture: str, state: dict) -> None:
    """Every cell of the lecture ran, none left an error output, and its first panel shows a figure (screenshot)."""
    errors = [(c["index"], e["ename"], e["evalue"]) for c in state["cells"] for e in c["errors"]]
    assert not errors, f"{lecture}: error outputs {errors}"
    not_run = [c["index"] for c in state["cells"] if c["count"] is None]
    assert state["runAll"] == "done" and not not_run, f"{lecture}: run-all {state['runAll']}, cells not run {not_run}"
    panels = page.locator(".jp-OutputArea-output .widget-vbox:has(.widget-output)")
    first_panel = panels.first if panels.count() else None
    if first_panel is not None:
        first_panel.scroll_into_view_if_needed()
        assert first_panel.locator(".widget-output img").count() >= 1, f"{lecture}: the first panel shows no figure"
    screenshot(page, lecture.replace(".ipynb", ".png"), top=first_panel)


# Lectures 01 and 02 are run in JupyterLab, and checked the same way, by their slider tests below.
WITH_SLIDER_TESTS = {"01_batch_sgd.ipynb", "02_momentum_adam.ipynb"}


@pytest.mark.parametrize("lecture", [lecture for lecture in LECTURES if lecture not in WITH_SLIDER_TESTS])
def test_lecture_runs_in_jupyterlab_without_errors(page, lab_url, lecture):
    open_notebook(page, lab_url, f"lectures/{lecture}")
    assert_ran_without_errors(page, lecture, run_all(page, RUN_ALL_S.get(lecture, RUN_ALL_DEFAULT_S)))


def test_lecture_01_timing_panel_follows_its_width_slider(page, lab_url):
    open_notebook(page, lab_url, "lectures/01_batch_sgd.ipynb")
    assert_ran_without_errors(page, "01_batch_sgd.ipynb", run_all(page, RUN_ALL_DEFAULT_S))
    panel = page.locator(".widget-vbox:has(.widget-output)").filter(has=page.locator(".widget-label", has_text="width")).first
    panel.scroll_into_view_if_needed()
    before = panel_snapshot(panel)
    handle = slider(panel, "width").locator(".noUi-handle")
    handle.focus()
    handle.press("ArrowLeft")  # 1000 → 500
    after = wait_for_change(panel, before, text="500×500 layer")
    assert "500" in slider(panel, "width").inner_text()
    assert kernel_value(page, "timing_panel.values()['width']", changed_from=1000) == 500
    screenshot(page, "01_batch_sgd-width-500.png", top=panel)
    assert "speed ratio at B=" in after["text"], after["text"]


def test_lecture_02_trajectory_panel_follows_keyboard_and_mouse(page, lab_url):
    open_notebook(page, lab_url, "lectures/02_momentum_adam.ipynb")
    assert_ran_without_errors(page, "02_momentum_adam.ipynb", run_all(page, RUN_ALL_DEFAULT_S))
    panel = page.locator(".widget-vbox:has(.widget-output)").filter(has=page.locator(".widget-label", has_text="gamma")).first
    panel.scroll_into_view_if_needed()
    gamma = float(kernel_output(page, "print(trajectory_panel.values()['gamma'])"))

    # keyboard: ten presses of → move γ up by ten steps of 0.01
    before = panel_snapshot(panel)
    handle = slider(panel, "gamma").locator(".noUi-handle")
    handle.focus()
    for _ in range(10):
        handle.press("ArrowRight")
    expected = min(round(gamma + 0.10, 2), 0.99)
    after_keys = wait_for_change(panel, before, text=f"momentum γ={expected:.2g} ")
    assert abs(kernel_value(page, "trajectory_panel.values()['gamma']", changed_from=gamma) - expected) < 1e-9

    # mouse: drag the handle to a fifth of the track
    track = slider(panel, "gamma").locator(".noUi-target")
    track.scroll_into_view_if_needed()
    box, grip = track.bounding_box(), handle.bounding_box()
    assert box["width"] > 50, f"the γ slider is squeezed to {box['width']} px"
    page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    dragged = kernel_value(page, "trajectory_panel.values()['gamma']", changed_from=expected)
    assert 0.1 < dragged < 0.3, f"γ after dragging to 20 % of the track: {dragged}"
    wait_for_change(panel, after_keys, text=f"momentum γ={dragged:.2g} ")
    screenshot(page, "02_momentum_adam-dragged.png", top=panel)


def test_exercise_stops_at_its_first_gap_with_the_hint(page, lab_url):
    open_notebook(page, lab_url, "exercises/01_batch_sgd.ipynb")
    state = run_all(page, RUN_ALL_DEFAULT_S)
    errors = [(c["index"], e) for c in state["cells"] for e in c["errors"]]
    assert len(errors) == 1, f"exactly one error output expected, got {errors}"
    index, error = errors[0]
    assert error["ename"] == "NotImplementedError"
    solution = nbformat.read(ROOT / "solutions" / "01_batch_sgd.ipynb", as_version=4)
    first_gap = next(i for i, c in enumerate(solution.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    first_check = next(i for i, c in enumerate(solution.cells) if i > first_gap and c.metadata.get("nbgrader", {}).get("grade"))
    # the gap defines a function whose body raises; the check cell below it calls the function
    assert index == first_check, f"the error is in cell {index}, the first check (of the gap in cell {first_gap}) is {first_check}"
    assert error["evalue"] == first_hint(solution.cells[first_gap].source)
    later = [c["index"] for c in state["cells"] if c["index"] > index and c["count"] is not None]
    assert not later, f"cells after the failing gap ran: {later}"
    screenshot(page, "exercise_01-first-gap.png",
               top=page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").first)

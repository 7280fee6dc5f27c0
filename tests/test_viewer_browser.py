"""``ns-viewer`` on the shipped activation-nerf run, driven in headless Chromium: the page lists the
inference controls, switching the sampler in the page changes what the model renders (the panel's
readouts, written by the model, follow), and the render area shows the demo scene's three spheres.

Needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``; ``.ci/run`` does
that) and the ``selenium`` package (the ``test`` extra); skipped without them.
"""

from __future__ import annotations

import colorsys
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.runs import REPO

RUN = Path("outputs/demo/spheres/activation-nerf/run/config.yml")  # relative to the repository root
NS_VIEWER = Path(sys.executable).parent / "ns-viewer"
CHROMIUM = next(
    (p for p in map(shutil.which, ["chromium", "chromium-browser", "google-chrome"]) if p is not None), None
)
CHROMEDRIVER = shutil.which("chromedriver")
MAX_RES = 64  # the viewer's "Max res" (its least), set in the page: short frames on a CPU

pytestmark = [
    pytest.mark.skipif(not (REPO / RUN).is_file(), reason="no shipped activation-nerf run"),
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="no Chromium / chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

CONTROLS = ["Sampler", "Probed layer", "Transform", "Fine samples", "Initial samples", "Skip empty rays"]
CONTROLS += ["Upsample probe"]
CONTROLS += ["Gate pixels", "Precision", "Kernels", "Status", "Last frame", "Rendered with"]
FRAME = re.compile(r"^\d+ ms, (\d+)x(\d+) px$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ViewerProcess:
    """``ns-viewer --load-config RUN`` on a free port, on the CPU, in its own process group."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "CUDA_VISIBLE_DEVICES": "",
            # the plugin of this tree, whatever the environment has installed
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
        cmd = [str(NS_VIEWER), "--load-config", str(RUN), "--viewer.websocket-port", str(self.port)]
        cmd += ["--viewer.websocket-host", "127.0.0.1"]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"ns-viewer exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"ns-viewer did not serve {self.url} within {timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture()
def viewer_process(tmp_path):
    from nerfinternals.demo import DEMO_SCENE, ensure_scene

    ensure_scene(REPO / DEMO_SCENE)  # the run's data (regenerated if missing)
    process = ViewerProcess(tmp_path / "ns-viewer.log")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture()
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


class Page:
    """The viewer's page: controls found by their label, as a user finds them."""

    def __init__(self, driver, viewer: ViewerProcess) -> None:
        self.driver = driver
        self.viewer = viewer

    def wait(self, condition: Callable[[], object], what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout:.0f} s waiting for {what}; ns-viewer:\n{self.viewer.tail()}"
                )
            time.sleep(0.25)

    def labels(self) -> list[str]:
        return self.driver.execute_script(
            "return [...document.querySelectorAll('label')].map(l => l.textContent)"
        )

    def field(self, label: str):
        """The input of the control labelled ``label`` (None while there is none)."""
        return self.driver.execute_script(
            "const l = [...document.querySelectorAll('label')].find(x => x.textContent === arguments[0]);"
            "return l ? l.closest('.mantine-Flex-root').querySelector('input:not([type=hidden])') : null;",
            label,
        )

    def value(self, label: str) -> str:
        return self.field(label).get_attribute("value")

    def readouts(self) -> tuple[str, str]:
        """ "Last frame" and "Rendered with", read together."""
        return tuple(
            self.driver.execute_script(
                "const v = l => [...document.querySelectorAll('label')].find(x => x.textContent === l)"
                ".closest('.mantine-Flex-root').querySelector('input').value;"
                "return [v('Last frame'), v('Rendered with')];"
            )
        )

    def select(self, label: str, option: str) -> None:
        """Open the dropdown ``label`` and click ``option`` in its list."""
        field = self.field(label)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        field.click()

        def shown_option():
            for element in self.driver.find_elements(By.CSS_SELECTOR, "[role=option]"):
                if element.is_displayed() and element.text == option:
                    return element
            return None

        self.wait(shown_option, f"option {option!r} of {label!r}").click()
        self.wait(lambda: self.value(label) == option, f"{label!r} to show {option!r}")

    def type(self, label: str, text: str) -> None:
        """Replace the text of the input ``label`` and leave it (Enter, then Tab)."""
        field = self.field(label)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(text, Keys.ENTER)
        field.send_keys(Keys.TAB)

    def render_area(self) -> Image.Image:
        """A screenshot of the viewer's canvas (the render area)."""
        box = self.driver.execute_script(
            "const c = [...document.querySelectorAll('canvas')]"
            ".sort((a, b) => b.clientWidth * b.clientHeight - a.clientWidth * a.clientHeight)[0];"
            "const r = c.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];"
        )
        shot = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        return shot.crop(tuple(round(v) for v in box))


def _sphere_hues() -> list[float]:
    """Hue (0..1) of each sphere's base colour in the demo scene's definition."""
    from nerfinternals.data.synthetic import SCENES

    return [colorsys.rgb_to_hsv(*p.material.color)[0] for p in SCENES["spheres"].primitives]


def _hue_shares(image: Image.Image, hues: list[float]) -> list[float]:
    """Share of the image's pixels that are strongly saturated and close in hue to each of ``hues``."""
    hsv = np.asarray(image.convert("HSV"), dtype=np.float64) / 255.0
    saturated = (hsv[..., 1] > 0.45) & (hsv[..., 2] > 0.25)
    shares = []
    for hue in hues:
        distance = np.abs(hsv[..., 0] - hue)
        distance = np.minimum(distance, 1.0 - distance)
        shares.append(float((saturated & (distance < 25 / 360)).mean()))
    return shares


def _shows_the_spheres(page: Page, min_share: float = 0.03) -> list[float] | None:
    shares = _hue_shares(page.render_area(), _sphere_hues())
    return shares if min(shares) >= min_share else None


def _new_frame(page: Page, sampler: str, shown: str) -> str:
    """Wait for the readouts of a frame rendered with ``sampler`` whose "Last frame" text differs from
    ``shown`` (the text before the switch); that text."""

    def done():
        last, rendered_with = page.readouts()
        return (
            FRAME.match(last) and rendered_with == f"{sampler}, fp32, fast kernels" and last != shown and last
        )

    return page.wait(done, f"a new frame of the {sampler} sampler", timeout=60)


def test_the_sampler_switches_in_the_page_and_the_scene_renders(viewer_process, browser):
    viewer_process.wait_until_serving(timeout=180)
    page = Page(browser, viewer_process)
    browser.get(viewer_process.url)
    page.wait(lambda: page.field("Sampler") is not None, "a control labelled 'Sampler'", timeout=60)
    labels = page.labels()
    assert labels[labels.index("Sampler") :][: len(CONTROLS)] == CONTROLS
    assert page.value("Sampler") == "stock"

    page.type("Max res", str(MAX_RES))
    for sampler in ["stock", "activation", "stock"]:
        shown = page.readouts()[0]
        if page.value("Sampler") != sampler:
            page.select("Sampler", sampler)
            assert page.value("Status") == f"applied: Sampler = {sampler}"
        _new_frame(page, sampler, shown)
        time.sleep(0.5)  # the frame's image follows its readouts
        assert page.wait(lambda: _shows_the_spheres(page), f"the spheres under the {sampler} sampler")

    # a value set_inference refuses: the reason in the panel, the control back at the setting
    page.type("Fine samples", "1")
    page.wait(lambda: page.value("Status").startswith("rejected: --fine-samples must be 0"), "the rejection")
    page.wait(lambda: page.value("Fine samples") == "0", "'Fine samples' to snap back to 0")
    assert page.value("Sampler") == "stock"

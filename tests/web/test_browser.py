"""The page in a real browser: upload, Upscale, the before/after slider, an error, no network.

The screenshot goes to ``$GTASR_SCREENSHOT_DIR/serve.png`` when that is set
(``GTASR_SCREENSHOT_DIR=docs/images`` renews the README's), else to tmp_path.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import PIL.Image
import pytest

pytestmark = pytest.mark.slow
WAIT = 180
ERROR_SEEN_S = 13.0
"""Longer than Gradio's default error toast (10 s): a page error must stay until closed."""


def _by_css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def _wait(browser: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT, poll_frequency=0.2).until(condition)


def _loaded(browser: Any, selector: str) -> list[Any] | None:
    """The images under ``selector`` once every one of them has decoded, else None."""
    images = _by_css(browser, selector)
    done = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    return images if images and all(browser.execute_script(done, i) for i in images) else None


def _requests(browser: Any) -> list[str]:
    """Every URL the page asked for, from Chromium's network log."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def test_page_upscales_the_sample_and_shows_errors_without_the_internet(
    server: Any, browser: Any, sample_png: Path, tmp_path: Path
) -> None:
    browser.get(server.url)
    upload = _wait(browser, lambda b: _by_css(b, "#input-image input[type=file]"))[0]
    upload.send_keys(str(sample_png))
    _wait(browser, lambda b: _loaded(b, "#input-image img"))
    _by_css(browser, "#upscale-button")[0].click()

    before, after = _wait(browser, lambda b: _loaded(b, "#result-slider img"))
    size = "return [arguments[0].naturalWidth, arguments[0].naturalHeight]"
    width, height = PIL.Image.open(sample_png).size
    assert browser.execute_script(size, before) == [4 * width, 4 * height]
    assert browser.execute_script(size, after) == [4 * width, 4 * height]
    assert before.get_attribute("src").endswith("/sample-bicubic.png")
    assert after.get_attribute("src").endswith("/sample.png")
    info = _wait(browser, lambda b: _by_css(b, "#result-info")[0].text)
    assert info.startswith(f"{width}x{height} → {4 * width}x{4 * height} in ")
    assert "from pressing Upscale to the result" in info
    links = [a.get_attribute("href") for a in _by_css(browser, "#result-file a[href]")]
    assert links and all(link.endswith("/sample.png") for link in links)
    folder = Path(os.environ.get("GTASR_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(folder / "serve.png"))

    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    _by_css(browser, "#input-image button[aria-label='Remove Image']")[0].click()
    _by_css(browser, "#input-image input[type=file]")[0].send_keys(str(bad))
    _by_css(browser, "#upscale-button")[0].click()
    toast = _wait(browser, lambda b: [t.text for t in _by_css(b, ".toast-body") if t.text])
    assert "bad.png: not a recognised image file" in toast[0]
    assert not _by_css(browser, "#result-slider img")  # the earlier result is gone
    assert not _by_css(browser, "#result-file a[href]")
    time.sleep(ERROR_SEEN_S)  # Gradio's default toast would have closed by now
    assert any("bad.png" in t.text for t in _by_css(browser, ".toast-body"))

    urls = _requests(browser)
    assert any(url.startswith(server.url) for url in urls)
    local = {urlsplit(server.url).netloc}
    remote = [
        url
        for url in urls
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).netloc not in local
    ]
    assert remote == []


def test_batch_tab_upscales_from_the_browser(
    server: Any, browser: Any, sample_png: Path, tmp_path: Path
) -> None:
    """Pressing Upscale all clears the tab, then the job's summary and zip appear."""
    browser.get(server.url)
    tab = _wait(browser, lambda b: [t for t in _by_css(b, "button[role=tab]") if t.text == "Batch"])
    tab[0].click()
    upload = _wait(browser, lambda b: _by_css(b, "input[type=file][multiple]"))[0]
    upload.send_keys(str(sample_png))
    uploaded = "return Array.from(document.querySelectorAll('td')).map(c => c.innerText)"
    _wait(browser, lambda b: any("sample" in cell for cell in b.execute_script(uploaded)))
    _by_css(browser, "#batch-button")[0].click()
    summary = _wait(browser, lambda b: _by_css(b, "#batch-summary")[0].text)
    assert summary.startswith("1 upscaled, 0 failed, in ")
    links = _wait(browser, lambda b: _by_css(b, "#batch-file a[href]"))
    assert links[0].get_attribute("href").endswith("/gtasr-x4.zip")

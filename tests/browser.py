"""Headless Chromium for page tests (Debian's chromium + chromium-driver, driven by Selenium).

``make test`` installs both when missing (Makefile ``browser-deps``); elsewhere the tests that need
them skip with the reason.
"""
from __future__ import annotations

import contextlib
import shutil
import time

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing: install Debian's chromium and chromium-driver (make browser-deps)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium that keeps the page's console log; quits on exit."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                "--autoplay-policy=no-user-gesture-required", "--enable-unsafe-swiftshader"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout_s: float = 60.0, what: str = ""):
    """Poll ``script`` (a JS expression) until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or script}")
        time.sleep(0.05)


def console_errors(driver) -> list[dict]:
    """SEVERE entries of the page's console since the last call."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]

"""A real headless Chromium: Debian's ``chromium`` driven through Debian's ``chromium-driver`` by
Selenium (never Selenium Manager, which would download a driver). `launch_chromium` is shared by
the browser tests and scripts/screenshots.py; `start_chromium` is the tests' form: where either
program is missing the tests skip, or fail when ``CI=true`` (.ci/run installs both)."""

from __future__ import annotations

import os
import shutil

from selenium import webdriver

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install chromium chromium-driver"


class NoChromium(Exception):
    """Chromium or its driver is not installed."""


def launch_chromium(width: int = 1600, height: int = 1000, *arguments: str) -> webdriver.Chrome:
    """A headless Chromium window of ``width`` x ``height`` CSS pixels (more ``arguments`` for
    Chromium's command line); `NoChromium` naming what is missing."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = "a Chromium browser" if browser is None else "chromedriver"
        raise NoChromium(f"{missing} is not installed ({INSTALL})")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", *arguments):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def start_chromium(width: int = 1600, height: int = 1000) -> webdriver.Chrome:
    """`launch_chromium` for a test: skipped without Chromium, failed under ``CI=true``."""
    import pytest

    try:
        return launch_chromium(width, height)
    except NoChromium as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))

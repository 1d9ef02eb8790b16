"""A real headless Chromium for the browser tests: Debian's ``chromium`` driven through Debian's
``chromium-driver`` by Selenium (never Selenium Manager, which would download a driver). Where
either is missing the tests skip, or fail when ``CI=true`` (.ci/run installs both)."""

from __future__ import annotations

import os
import shutil

import pytest
from selenium import webdriver

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def start_chromium(width: int = 1600, height: int = 1000) -> webdriver.Chrome:
    """A headless Chromium window of ``width`` x ``height`` CSS pixels."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = "a Chromium browser" if browser is None else "chromedriver"
        message = f"{missing} is not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))

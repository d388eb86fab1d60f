"""The seller's console in a real browser (headless Chromium driven by Selenium): log in, filter by error
code, open the order, click reprocess, and see the order move on. A screenshot of each page is written
under the test's temporary folder."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from connector.embedded import Sandboxes
from connector.stack import Stack
from tests.console_support import PASSWORD, park_with_price_divergence, running_console

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def browser() -> webdriver.Chrome:
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: .ci/run installs Debian's chromium and chromium-driver")
        pytest.skip("no chromium / chromedriver here: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def seller_fixes_an_order(base_url: str, order_id: str, screenshots: Path, fix_the_price: Callable[[], None]) -> str:
    """What a seller does, click by click; returns the order's status as the page shows it at the end."""
    driver = browser()
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(f"{base_url}/")
        driver.find_element(By.ID, "user").send_keys("seller")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "log-in").click()
        wait.until(lambda d: d.find_elements(By.ID, "filters"))

        code = driver.find_element(By.ID, "filter-code")
        code.clear()
        code.send_keys("FMT007")
        driver.find_element(By.ID, "apply-filters").click()
        wait.until(lambda d: "code=FMT007" in d.current_url)
        driver.save_screenshot(str(screenshots / "list-filtered.png"))
        codes = {cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#orders tbody td:nth-child(5)")}
        assert codes == {"FMT007"}, codes

        driver.find_element(By.LINK_TEXT, order_id).click()
        wait.until(lambda d: d.find_elements(By.ID, "order-status"))
        assert driver.find_element(By.ID, "order-status").text == "parked"
        assert "99.90" in driver.find_element(By.ID, "seller-action").text
        driver.save_screenshot(str(screenshots / "order-parked.png"))

        fix_the_price()
        driver.find_element(By.ID, "reprocess").click()
        wait.until(lambda d: d.find_elements(By.ID, "flash"))
        assert driver.find_element(By.ID, "flash").text == "reprocess requested"

        def moved_on(d: webdriver.Chrome) -> bool:
            d.refresh()
            return d.find_element(By.ID, "order-status").text not in ("parked", "validating")

        wait.until(moved_on)
        driver.save_screenshot(str(screenshots / "order-after-reprocess.png"))
        return str(driver.find_element(By.ID, "order-status").text)
    finally:
        driver.quit()


async def test_a_seller_filters_opens_and_reprocesses_an_order_in_a_browser(stack: Stack, tmp_path: Path) -> None:
    box = stack.sandboxes
    assert isinstance(box, Sandboxes)
    order_id = await park_with_price_divergence(stack, box)
    try:
        async with running_console(stack) as console:
            # Selenium blocks: it runs in a thread while this loop serves the console and runs the worker.
            status = await asyncio.to_thread(
                seller_fixes_an_order, console.url, order_id, tmp_path, box.vtex.clear_faults
            )
    finally:
        box.vtex.clear_faults()
    assert status == "dispatch-authorized"
    for name in ("list-filtered.png", "order-parked.png", "order-after-reprocess.png"):
        assert (tmp_path / name).stat().st_size > 10_000

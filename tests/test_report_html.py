"""The HTML report in a real headless browser (Debian's chromium + chromedriver, driven by
selenium): the page opens from a file with no server and no network, loads without console
errors, and draws one node per candidate of a known run. A screenshot goes into the test's
tmp_path. Without a browser the test skips, except in CI (CI or DARWIN_REQUIRE_BROWSER set),
where it fails: CI must prove the page works."""
from __future__ import annotations

import os
import re
import shutil

import pytest

import known_run
from darwin_git.report import write_report

pytestmark = pytest.mark.slow  # a real browser

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1500,1300")


def _browser_or_skip(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        binary = shutil.which("chromium") or "/usr/bin/chromium"
        driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        if not (os.path.exists(binary) and os.path.exists(driver_path)):
            raise RuntimeError(f"no {binary} and {driver_path} (apt-get install chromium "
                               "chromium-driver)")
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: selenium never looks for (or downloads) one itself.
        return webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as exc:  # ImportError, a missing binary, a browser that cannot start
        if os.environ.get("CI") or os.environ.get("DARWIN_REQUIRE_BROWSER"):
            pytest.fail(f"a headless browser is required here: {exc}")
        pytest.skip(f"no headless browser: {exc}")


@pytest.fixture
def browser(tmp_path):
    driver = _browser_or_skip(tmp_path)
    yield driver
    driver.quit()


def _open(browser, path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.as_uri())
    # the script marks the page ready once it has drawn everything
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_report_page_draws_the_run_in_a_browser(population, git, browser, tmp_path):
    from selenium.webdriver.common.by import By

    ids = known_run.build(population, git)
    write_report(population, tmp_path / "reports")
    page = tmp_path / "reports" / "report.html"
    text = page.read_text()
    # self-contained: nothing to fetch from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text

    _open(browser, page)
    nodes = browser.find_elements(By.CSS_SELECTOR, "#tree .node")
    assert len(nodes) == known_run.COMMITS + known_run.ATTEMPTS
    by_id = {n.get_attribute("data-id"): n for n in nodes}
    assert "failed" in by_id[ids["c3"]].get_attribute("class")
    assert "crossover" in by_id[ids["cross"]].get_attribute("class")
    assert "human" in by_id[ids["human"]].get_attribute("class")
    assert "rejected" in by_id[ids["c2"]].get_attribute("class")
    assert "kept" in by_id[ids["c4"]].get_attribute("class")
    winners = {n.get_attribute("data-id") for n in nodes
               if "winner" in n.get_attribute("class").split()}
    assert winners == {ids["seed"], ids["c1"], ids["c4"]}  # agent-00's line
    # every parent edge is drawn (a merge's second parent dashed), and proposals hang below
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tree path.edge")) == 13
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tree path.edge.merge")) == 2

    by_id[ids["c3"]].click()
    details = browser.find_element(By.ID, "details").text
    assert "out_of_memory" in details and "Double the width" in details
    by_id[ids["c5"]].click()
    details = browser.find_element(By.ID, "details").text
    assert "not a new measurement" in details and ids["c1"] in details
    by_id[ids["human"]].click()
    assert known_run.MARKUP in browser.find_element(By.ID, "details").text  # shown as text
    assert browser.title.startswith("darwin-git run report")  # and never run
    by_id[ids["c1"]].click()
    details = browser.find_element(By.ID, "details").text
    assert "2 (1 retries)" in details and "Why: raise the learning rate" in details
    assert "0.2300 lower (better)" in details
    assert "promoted: -0.2100 ± 0.0100 nats over 3 seeds, p = 0.004" in details  # its verdict

    points = browser.find_elements(By.CSS_SELECTOR, "#fitness-chart circle.point")
    assert len(points) == 2 * 2  # best and median, two generations
    assert browser.save_screenshot(str(tmp_path / "report.png"))


def test_report_page_of_a_run_with_nothing_yet(population, browser, tmp_path):
    write_report(population, tmp_path / "reports")
    _open(browser, tmp_path / "reports" / "report.html")
    from selenium.webdriver.common.by import By
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tree .node")) == 1  # the seed
    assert "No generation has finished yet." in browser.find_element(By.TAG_NAME, "body").text
    assert browser.save_screenshot(str(tmp_path / "empty.png"))

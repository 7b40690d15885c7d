"""The HTML report in a real headless browser (Debian's chromium + chromedriver, driven by
selenium): the page opens from a file with no server and no network, loads without console
errors, and draws one node per candidate of a known run; at 1280 and 800 px wide the tree uses
the page's width, opens on the best node, keeps its generation labels in view when scrolled and
its node labels apart. Screenshots go into the test's tmp_path (the path is printed; set
DARWIN_SCREENSHOTS=DIR to have copies there too). Without a browser the tests skip, except in
CI (CI or DARWIN_REQUIRE_BROWSER set), where they fail: CI must prove the page works."""
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


def screenshot(browser, path) -> None:
    """Save the tree's part of the page, say where, and copy it to DARWIN_SCREENSHOTS if set."""
    browser.execute_script("document.getElementById('tree-section').scrollIntoView()")
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    if os.environ.get("DARWIN_SCREENSHOTS"):
        out = os.path.join(os.environ["DARWIN_SCREENSHOTS"], path.name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(path, out)
        print(f"screenshot: {out}")


def rect(browser, element) -> dict:
    return browser.execute_script("const r = arguments[0].getBoundingClientRect(); "
                                  "return {l: r.left, r: r.right, t: r.top, b: r.bottom};",
                                  element)


def apart(a: dict, b: dict) -> bool:
    return a["r"] <= b["l"] or b["r"] <= a["l"] or a["b"] <= b["t"] or b["b"] <= a["t"]


def inside(a: dict, box: dict) -> bool:
    return a["l"] >= box["l"] - 0.5 and a["r"] <= box["r"] + 0.5 and \
        a["t"] >= box["t"] - 0.5 and a["b"] <= box["b"] + 0.5


def assert_labels_apart(browser) -> None:
    """No node label covers another label or any node."""
    from selenium.webdriver.common.by import By

    labels = [rect(browser, t) for t in browser.find_elements(By.CSS_SELECTOR, "#tree .node-label")]
    marks = [rect(browser, c) for c in browser.find_elements(
        By.CSS_SELECTOR, "#tree .node circle, #tree .node rect")]
    assert labels
    for i, a in enumerate(labels):
        assert all(apart(a, b) for b in labels[i + 1:]), labels
        assert all(apart(a, m) for m in marks), (a, marks)


@pytest.mark.parametrize("width", [1280, 800])
def test_the_tree_fits_the_page_and_opens_on_the_best_node(population, git, browser, tmp_path,
                                                          width):
    from selenium.webdriver.common.by import By

    ids = known_run.build(population, git)
    write_report(population, tmp_path / "reports")
    browser.set_window_size(width, 1000)
    _open(browser, tmp_path / "reports" / "report.html")
    inner = browser.execute_script("return window.innerWidth")
    page = browser.execute_script("return document.documentElement.scrollWidth")
    assert page <= inner, "the page scrolls sideways"
    box = browser.find_element(By.ID, "tree-box")
    # the tree's panel takes the page's width: beside the details at 1280, alone at 800
    share = 0.6 if width >= 1280 else 0.9
    assert rect(browser, box)["r"] - rect(browser, box)["l"] >= share * inner

    # it opens on the best agent's node: selected, in view, its details shown
    best = browser.find_element(By.CSS_SELECTOR, f'#tree .node[data-id="{ids["c4"]}"]')
    assert "selected" in best.get_attribute("class").split()
    assert inside(rect(browser, best), rect(browser, box))
    assert "Use RMSNorm" in browser.find_element(By.ID, "details").text
    assert_labels_apart(browser)
    screenshot(browser, tmp_path / f"report-{width}.png")

    # a human's commit is named; the pruned agent's branch is marked
    human = browser.find_element(By.CSS_SELECTOR, f'#tree .node[data-id="{ids["human"]}"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click'))", human)
    details = browser.find_element(By.ID, "details").text
    assert "made by\nTest Human" in details and "agent\nagent-01" in details
    assert "made after generation 1 by a human, evaluated in 2" in details
    assert "on a pruned agent's branch" in details
    assert "pruned" in human.get_attribute("class").split()
    assert any("✂ agent-01 (pruned)" == t.text for t in
               browser.find_elements(By.CSS_SELECTOR, "#tree .node-label"))

    # scrolled to its far corner, every generation still says which it is
    browser.execute_script("const b = arguments[0]; b.scrollLeft = b.scrollWidth; "
                           "b.scrollTop = b.scrollHeight; b.dispatchEvent(new Event('scroll'));",
                           box)
    bands = browser.find_elements(By.CSS_SELECTOR, "#tree .band-label")
    assert [b.text for b in bands] == ["seed", "gen 1", "gen 2"]
    box_rect = rect(browser, box)
    visible = [b for b in bands if rect(browser, b)["b"] > box_rect["t"]]
    assert visible and all(box_rect["l"] <= rect(browser, b)["l"] and
                           rect(browser, b)["r"] <= box_rect["r"] for b in visible)
    screenshot(browser, tmp_path / f"report-{width}-scrolled.png")


def test_dense_rows_keep_their_labels_apart(seed_dir, tmp_path, browser):
    """Eight agents, each advanced to its own child in one generation (and two on one
    commit): a row of labelled nodes, drawn at 800 px."""
    from darwin_git.population.journal import Journal
    from darwin_git.mutate.base import Mutation
    from darwin_git.create import init_population
    from darwin_git.result import make_result

    pop = init_population(tmp_path / "run" / "population", seed=seed_dir, agents=8)
    seed = pop.tip("agent-00")
    for i, agent in enumerate(pop.agents()):
        child = pop.commit_mutation(seed, Mutation(summary=f"Change {i}", reasoning="-",
                                                   changes={"train.py": f"lr = {i}\n"},
                                                   operator="lr", mutator="builtin"),
                                    agent, 1, ref=f"refs/heads/agents/{agent}")
        pop.add_result(child, make_result("ok", val_loss=2.0 + i / 100, clock="cpu",
                                          budget_s=5.0, device="cpu"))
    pop.spawn("agent-08", pop.tip("agent-03"))
    Journal(pop.repo).append({"phase": "done", "generation": 1, "best": {}, "median": 2.0},
                             "Generation 1 done")
    write_report(pop, tmp_path / "reports")
    browser.set_window_size(800, 1000)
    _open(browser, tmp_path / "reports" / "report.html")
    assert_labels_apart(browser)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= \
        browser.execute_script("return window.innerWidth")
    screenshot(browser, tmp_path / "report-dense-800.png")


def test_report_page_of_a_run_with_nothing_yet(population, browser, tmp_path):
    write_report(population, tmp_path / "reports")
    _open(browser, tmp_path / "reports" / "report.html")
    from selenium.webdriver.common.by import By
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tree .node")) == 1  # the seed
    assert "No generation has finished yet." in browser.find_element(By.TAG_NAME, "body").text
    assert browser.save_screenshot(str(tmp_path / "empty.png"))

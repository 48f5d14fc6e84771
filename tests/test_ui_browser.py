"""The dashboard as a person uses it: a real server, headless Chromium, clicks and what the page shows.

The server runs in a thread on a port the OS picked; Debian's ``chromium`` and ``chromedriver``
drive it (nothing is downloaded: the driver path is given, Selenium Manager stays offline). Each
page is saved as a screenshot under ``test-artifacts/ui/``. Without Chromium the test is skipped,
unless ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.test_ui import CHURN, EVIL, STEPS, seed_ledger

pytestmark = pytest.mark.slow

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Where the screenshots go (gitignored); CI keeps them as test artifacts.
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
WAIT_S = 10.0


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason, allow_module_level=True)


_require(os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), "Debian's chromium and chromium-driver are needed")
try:
    import fastapi  # noqa: F401
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
    _require(False, f"the browser test needs fastapi and selenium: {e}")

from modeltrail.ui import server  # noqa: E402


@pytest.fixture
def live(db_url_sqlite_mysql: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The dashboard served by uvicorn over a seeded ledger: (base URL, seeded ids)."""
    facts = seed_ledger(db_url_sqlite_mysql)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uvicorn_server = server.make_server(db_url_sqlite_mysql, host="127.0.0.1", port=port, log_level="warning")
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", facts
    finally:
        uvicorn_server.should_exit = True
        thread.join(WAIT_S)
        sock.close()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="mt-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shoot(driver: Any, name: str, backend: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 800), 6000))
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}-{backend}.png"))
    driver.set_window_size(1280, 1000)


def wait_for(driver: Any, css: str) -> Any:
    return WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def texts(driver: Any, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def assert_page_is_clean(driver: Any, base: str) -> None:
    """No script ran from user data, nothing came from elsewhere, the console has no error (CSP included)."""
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith(base) for url in resources), resources
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_browse_models_compare_and_chart(live: tuple[str, dict[str, Any]], browser: Any, request: Any) -> None:
    base, facts = live
    backend = request.node.callspec.params["db_url_sqlite_mysql"]
    driver = browser

    # The model list: both models, the hostile name as plain text, what serves where.
    driver.get(base + "/")
    wait_for(driver, "table#models")
    assert set(texts(driver, "a.model-link")) == {CHURN, EVIL}
    churn_row = driver.find_element(By.XPATH, f"//tr[td/a[text()='{CHURN}']]").text
    assert "v3" in churn_row and "v1" in churn_row  # latest v3; production serves v1 after the rollback
    assert_page_is_clean(driver, base)
    shoot(driver, "models", backend)

    # Click the model: versions, serving now, a sortable table, the timeline with the rollback marked.
    driver.find_element(By.LINK_TEXT, CHURN).click()
    assert wait_for(driver, "h1#model-name").text == CHURN
    assert texts(driver, "#serving li") == ["production v1", "staging v3"]
    rows = driver.find_elements(By.CSS_SELECTOR, "#versions-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["v1", "v2", "v3"]
    header = driver.find_element(By.XPATH, "//table[@id='versions-table']//th[text()='val_auc']")
    header.click()  # ascending
    header.click()  # descending: the best final val_auc first
    first = driver.find_element(By.CSS_SELECTOR, "#versions-table tbody tr td").text
    assert first == "v3" and header.get_attribute("aria-sort") == "descending"
    production = driver.find_element(By.CSS_SELECTOR, 'ol.timeline[data-environment="production"]')
    assert len(production.find_elements(By.CSS_SELECTOR, "li")) == 3
    assert "rollback" in production.find_element(By.CSS_SELECTOR, "li.event-rollback").text
    assert "rolled back" in production.find_element(By.CSS_SELECTOR, "li.status-rolled_back").text
    assert_page_is_clean(driver, base)
    shoot(driver, "model", backend)

    # Compare v1 with v2 through the form.
    form = driver.find_element(By.ID, "compare-form")
    for name, value in (("a", "1"), ("b", "2")):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.TAG_NAME, "button").click()
    wait_for(driver, "#params-diff")
    assert driver.find_element(By.TAG_NAME, "h1").text == "v1 → v2"
    changes = texts(driver, "#params-diff tbody tr")
    assert changes == ["lr changed 0.1 0.05"]  # max_depth is 4 in both
    auc = driver.find_element(By.CSS_SELECTOR, 'tr[data-metric="val_auc"]')
    delta = auc.find_element(By.CSS_SELECTOR, "td.delta")
    assert delta.text == "+0.02" and "better" in delta.get_attribute("class")
    loss_delta = driver.find_element(By.CSS_SELECTOR, 'tr[data-metric="loss"] td.delta')
    assert "better" in loss_delta.get_attribute("class")  # the loss went down: better for a loss
    assert_page_is_clean(driver, base)
    shoot(driver, "compare", backend)

    # Open the chart of val_auc for both versions: one metric across versions, and two step curves.
    auc.find_element(By.LINK_TEXT, "curves").click()
    wait_for(driver, "figure#curves-chart.ready")
    across = driver.find_elements(By.CSS_SELECTOR, "figure#across-chart g.series")
    assert [(g.get_attribute("data-name"), g.get_attribute("data-points")) for g in across] == [
        ("final", "3"),
        ("best (max)", "3"),
    ]
    curves = driver.find_elements(By.CSS_SELECTOR, "figure#curves-chart g.series")
    assert [(g.get_attribute("data-name"), g.get_attribute("data-points")) for g in curves] == [
        ("v1", str(STEPS)),
        ("v2", str(STEPS)),
    ]
    assert len(driver.find_elements(By.CSS_SELECTOR, "figure#curves-chart g.series circle.point")) == 2 * STEPS
    overlay = driver.find_element(By.CSS_SELECTOR, "figure#curves-chart rect.overlay")
    ActionChains(driver).move_to_element(overlay).perform()
    tip = driver.find_element(By.CSS_SELECTOR, "figure#curves-chart .chart-tip")
    WebDriverWait(driver, WAIT_S).until(lambda _: tip.is_displayed())
    assert "v1:" in tip.text and "v2:" in tip.text
    shoot(driver, "charts", backend)
    driver.find_element(By.XPATH, "//figure[@id='curves-chart']//ul[@class='chart-legend']//button[span='v1']").click()
    shown = driver.find_elements(By.CSS_SELECTOR, "figure#curves-chart g.series")
    assert [g.get_attribute("data-name") for g in shown] == ["v2"]
    assert_page_is_clean(driver, base)

    # The training behind v2: params, stage, dataset, a chart per metric.
    driver.get(f"{base}/trainings/{facts['trainings'][2]}")
    wait_for(driver, "figure.chart.ready")
    params = dict(row.split(" ", 1) for row in texts(driver, "#params-table tbody tr"))
    assert params == {"lr": "0.05", "max_depth": "4"}
    assert texts(driver, "#stages-table tbody td:first-child") == ["fit"]
    assert "churn-2026-11" in driver.find_element(By.CSS_SELECTOR, ".cards").text
    charts = driver.find_elements(By.CSS_SELECTOR, "figure.chart.ready")
    assert len(charts) == 3  # val_auc, loss and the stage's duration
    assert_page_is_clean(driver, base)
    shoot(driver, "training", backend)

    # The audit log, filtered to deployments.
    driver.find_element(By.LINK_TEXT, "Audit").click()
    field = wait_for(driver, "#audit-filters input[name=action]")
    field.send_keys("deployment.*")
    driver.find_element(By.CSS_SELECTOR, "#audit-filters button").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: "action=deployment" in d.current_url)
    actions = texts(driver, "#audit-table tbody td:nth-child(3)")
    assert actions == ["deployment.deploy", "deployment.rollback", "deployment.deploy", "deployment.deploy"]
    assert_page_is_clean(driver, base)
    shoot(driver, "audit", backend)

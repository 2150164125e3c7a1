"""The Admin → Integrations page in a real browser (Debian's headless chromium, driven by
Selenium through chromium-driver): connect Splunk through the form against a strict
receiver, see the badge turn Connected and the delivered count rise, break the
receiver and see the badge turn Failing with the reason. Keeps a screenshot."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from continuum_events.admin import AdminService, create_app
from continuum_events.broker import local_broker
from continuum_events.connectors.host import ConnectorHost
from continuum_events.devtools.receivers import SplunkReceiver
from continuum_events.events import EventType
from continuum_events.producers.app import EventProducer
from continuum_events.settings import KafkaSettings
from continuum_events.topology import category_topic

pytestmark = pytest.mark.broker
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
TOKEN = "page-token-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[str, KafkaSettings]]:
    """Broker, connector host and the admin server on a free port."""
    with local_broker() as broker:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        service = AdminService(settings, tmp_path_factory.mktemp("secrets"), status_ttl_s=0.5)
        server = make_server("127.0.0.1", 0, create_app(service, token=TOKEN), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stop = threading.Event()
        host = threading.Thread(target=ConnectorHost(settings).run, args=(stop,), daemon=True)
        host.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/", settings
        finally:
            stop.set()
            host.join(30)
            server.shutdown()
            service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are needed (make system-deps installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1800",
        "--disable-gpu",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.implicitly_wait(0)
    yield browser
    browser.quit()


def wait(browser: WebDriver, predicate, timeout: float = 60.0, what: str = "the page"):
    """The page rebuilds its cards every 2 s: an element found a moment ago may be gone."""
    return WebDriverWait(
        browser,
        timeout,
        poll_frequency=0.2,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(lambda b: predicate(b), f"timed out: {what}")


def click(browser: WebDriver, element_id: str) -> None:
    """Click a control by id, again if a refresh replaced it in between."""

    def clicked(b: WebDriver) -> bool:
        b.find_element(By.ID, element_id).click()
        return True

    wait(browser, clicked, 15, f"clicking {element_id}")


def badge(browser: WebDriver, vendor: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, f"#card-{vendor} .badge").text


def field(browser: WebDriver, name: str, value: str) -> str:
    node = browser.find_element(By.CSS_SELECTOR, f'.integration[data-name="{name}"] [data-field="{value}"]')
    return node.text


def produce(settings: KafkaSettings, n: int, tmp: Path) -> list[str]:
    with EventProducer(settings, topic=category_topic("logging"), spool_path=tmp / f"{uuid.uuid4().hex}.db") as p:
        ids = [
            p.dispatch(EventType.PRINTER_JAM, {"printer_id": f"page-{i}", "conditions": ["jammed"]}) for i in range(n)
        ]
        assert p.flush(10) == 0
    return ids


def test_connect_watch_and_see_a_failure_in_the_browser(stack, browser, tmp_path) -> None:
    url, settings = stack
    with SplunkReceiver() as splunk:
        browser.get(url)
        # Sign in: the token lives in this tab's session storage, sent as a bearer header.
        token = wait(browser, lambda b: b.find_element(By.ID, "token"), what="the sign-in form")
        token.send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == 11, what="eleven vendor cards")
        wait(browser, lambda b: badge(b, "splunk") == "Not connected", what="the Not connected badge")
        assert {h.text for h in browser.find_elements(By.CSS_SELECTOR, "main h2")} >= {
            "Logging",
            "Monitoring",
            "Alerting",
        }

        # Connect through the form; a refused field shows its message next to it.
        click(browser, "connect-splunk")
        wait(browser, lambda b: b.find_element(By.ID, "connect-dialog").get_attribute("open") is not None)
        name = browser.find_element(By.ID, "field-name")
        name.clear()
        name.send_keys("splunk-page")
        browser.find_element(By.ID, "field-url").send_keys(splunk.url)
        browser.find_element(By.ID, "connect-submit").click()
        wait(browser, lambda b: b.find_element(By.ID, "field-token-error").text == "Required.", what="required token")
        browser.find_element(By.ID, "field-token").send_keys(SplunkReceiver.TOKEN)
        browser.find_element(By.ID, "connect-submit").click()
        wait(
            browser,
            lambda b: "plain http" in b.find_element(By.ID, "field-url-error").text,
            what="the address rule's message",
        )
        browser.find_element(By.NAME, "allow_insecure_http").click()
        browser.find_element(By.NAME, "allow_private_network").click()
        browser.find_element(By.ID, "connect-submit").click()

        wait(browser, lambda b: badge(b, "splunk") == "Connected", what="the Connected badge")
        assert SplunkReceiver.TOKEN not in browser.page_source

        # Test Connection: the verdict inline.
        click(browser, "test-splunk-page")
        wait(browser, lambda b: b.find_element(By.ID, "verdict-splunk-page").text.startswith("OK"), what="verdict")

        # Events flow: the delivered count rises.
        ids = produce(settings, 15, tmp_path)
        wait(browser, lambda b: int(field(b, "splunk-page", "delivered") or 0) >= 15, what="delivered 15")
        # The last hour's delivery rate as a small chart, with a text alternative.
        wait(
            browser,
            lambda b: b.find_elements(By.CSS_SELECTOR, "#rate-splunk-page polyline"),
            40,
            what="the delivery rate chart",
        )
        chart = browser.find_element(By.ID, "rate-splunk-page")
        assert "Delivered/s, last hour: now" in chart.get_attribute("aria-label")
        assert browser.find_element(By.ID, "lag-splunk-page").get_attribute("role") == "img"
        assert set(ids) <= set(splunk.received.event_ids)

        # The receiver refuses the token: the badge turns Failing with the reason.
        splunk.auth_broken = True
        produce(settings, 5, tmp_path)
        wait(browser, lambda b: badge(b, "splunk") == "Failing", what="the Failing badge")
        wait(
            browser,
            lambda b: (
                "Invalid token" in field(b, "splunk-page", "last_error")
                or "401" in field(b, "splunk-page", "last_error")
            ),
            what="the reason",
        )
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "admin-integrations.png"))
        assert SplunkReceiver.TOKEN not in browser.page_source
        assert (ARTIFACTS / "admin-integrations.png").stat().st_size > 10_000
        wait(browser, lambda b: int(field(b, "splunk-page", "errors") or 0) >= 1, what="the error count")
        assert " ago)" in field(browser, "splunk-page", "last_error"), "the last error says when"
        edit_in_a_small_window_and_a_taken_name_asks_first(browser, settings)


def in_view(browser: WebDriver, element_id: str) -> bool:
    return browser.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0;",
        element_id,
    )


def edit_in_a_small_window_and_a_taken_name_asks_first(browser: WebDriver, settings: KafkaSettings) -> None:
    from continuum_events.integrations import connected
    from continuum_events.operations import read_config

    browser.set_window_size(900, 420)  # a laptop with the browser's toolbars: fewer lines than the form
    try:
        click(browser, "edit-splunk-page")
        wait(browser, lambda b: b.find_element(By.ID, "connect-dialog").get_attribute("open") is not None)
        assert browser.find_element(By.ID, "connect-title").text == "Edit splunk-page"
        name = browser.find_element(By.ID, "field-name")
        assert name.get_attribute("value") == "splunk-page" and name.get_attribute("readonly") is not None
        token = browser.find_element(By.ID, "field-token")
        assert token.get_attribute("value") == "" and "leave blank" in token.get_attribute("placeholder")
        assert in_view(browser, "connect-submit") and in_view(browser, "connect-cancel"), "buttons scrolled away"
        index = browser.find_element(By.ID, "field-index")
        index.clear()
        index.send_keys("edited")
        browser.find_element(By.ID, "connect-submit").click()
        wait(
            browser,
            lambda b: b.find_element(By.ID, "connect-dialog").get_attribute("open") is None,
            what=f"saved ({browser.find_element(By.ID, 'connect-error').text})",
        )
        wait(
            browser,
            lambda b: connected(read_config(settings))["splunk-page"].options.get("index") == "edited",
            what="the edit stored, its secret kept",
        )
        assert connected(read_config(settings))["splunk-page"].secrets["token"].file

        # "Connect another" under a name already taken: the page asks; declining changes nothing.
        click(browser, "connect-splunk")
        wait(browser, lambda b: b.find_element(By.ID, "connect-dialog").get_attribute("open") is not None)
        assert in_view(browser, "connect-submit")
        name = browser.find_element(By.ID, "field-name")
        name.clear()
        name.send_keys("splunk-page")
        browser.find_element(By.ID, "field-url").send_keys("http://127.0.0.1:9/")
        browser.find_element(By.ID, "field-token").send_keys("another-token")
        browser.find_element(By.NAME, "allow_insecure_http").click()
        browser.find_element(By.NAME, "allow_private_network").click()
        browser.find_element(By.ID, "connect-submit").click()
        alert = WebDriverWait(browser, 30, ignored_exceptions=(NoAlertPresentException,)).until(
            lambda b: b.switch_to.alert
        )
        assert "already connected" in alert.text and "Replace" in alert.text
        alert.dismiss()
        wait(
            browser,
            lambda b: "Already connected" in b.find_element(By.ID, "field-name-error").text,
            what="the name's message",
        )
        assert connected(read_config(settings))["splunk-page"].options.get("index") == "edited"
        click(browser, "connect-cancel")
    finally:
        browser.set_window_size(1400, 1800)

"""Drives the status page in a real headless Chromium (Debian's chromium and
chromium-driver, through selenium), at 1400 px and at 390 px (a phone), with only
`status` public: the page loads without a token and shows the records and the events;
a drain, a manual failover and a pool dial made through the admin API show on the page (in the
header too) within its refresh period; times are ISO 8601 with the zone's offset;
fail-open is red, an operator's failover purple; on the phone every value sits beside
its own column's name and nothing is wider than the screen. Prints one JSON line of
figures.

Usage: status_page.py ADMIN_ADDR ENDPOINT RECORD POOL TOKEN [SCREENSHOT_DIR]"""

import json
import os
import re
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

admin, endpoint, record, pool, token = sys.argv[1:6]
shots = sys.argv[6] if len(sys.argv) > 6 else None
# A zone with an offset, so that the page must show one (+01:00 in winter).
os.environ["TZ"] = "Europe/Paris"

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--window-size=1400,1000"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def viewport(width, height, mobile):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def screenshot(name, width, mobile, most):
    """The page at this width, the viewport grown to its height (at most `most`)."""
    if not shots:
        return
    height = driver.execute_script("return document.documentElement.scrollHeight")
    viewport(width, min(height, most), mobile)
    driver.save_screenshot(os.path.join(shots, name))


def post(path, body):
    request = urllib.request.Request(f"http://{admin}{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"content-type": "application/json",
                                                             "authorization": f"Bearer {token}"})
    urllib.request.urlopen(request, timeout=5).read()


def text_of(selector):
    # The page re-renders on every refresh, so element handles go stale between a
    # find and a read; one script reads inside the page's own thread.
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector)


def row_of(table, first):
    return driver.execute_script(
        """for (const row of document.querySelectorAll('#' + arguments[0] + ' tbody tr')) {
               const cells = [...row.cells].map((c) => c.innerText.trim());
               if (cells[0] === arguments[1]) return cells.join(' | ');
           }
           return '';""", table, first)


def background(selector):
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? getComputedStyle(e).backgroundColor : '';",
        selector)


ISO = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
figures = {}
try:
    viewport(1400, 1000, False)
    started = time.monotonic()
    driver.get(f"http://{admin}/")
    wait = WebDriverWait(driver, 10, poll_frequency=0.05)
    wait.until(lambda d: len(d.find_elements("css selector", "#records tbody tr")) > 0)
    figures["loaded_ms"] = round((time.monotonic() - started) * 1000)
    # Only status is public: no token asked for, and the events are there too.
    wait.until(lambda d: len(d.find_elements("css selector", "#events li")) > 0)
    assert text_of("#events-note") == "", text_of("#events-note")
    assert not driver.find_element("id", "login").is_displayed()
    assert "drained" not in row_of("endpoints", endpoint), row_of("endpoints", endpoint)

    post("/v1/overrides", {"target": {"endpoint": endpoint}, "action": "drain", "reason": "browser test"})
    post("/v1/overrides", {"target": {"record": {"name": record}}, "action": {"failover": pool},
                           "reason": "browser test failover"})
    post("/v1/overrides", {"target": {"pool": "cdn"}, "action": {"dial": 50},
                           "reason": "browser test dial"})
    changed = time.monotonic()
    # The event stream refreshes at once, the poll every 5 s; the deadline leaves room
    # for a loaded CI machine (the time seen is reported, not asserted here).
    WebDriverWait(driver, 20, poll_frequency=0.05).until(
        lambda d: "drained" in row_of("endpoints", endpoint)
        and "failover (operator)" in text_of("#banner")
        and "dialled" in row_of("pools", "cdn"))
    figures["change_seen_ms"] = round((time.monotonic() - changed) * 1000)
    figures["banner"] = text_of("#banner")
    figures["head_class"] = driver.find_element("id", "head").get_attribute("class")
    figures["records"] = text_of("#records")
    figures["overrides"] = text_of("#overrides")
    figures["pools"] = text_of("#pools")
    figures["endpoints"] = text_of("#endpoints")
    figures["updated"] = text_of("#updated")
    figures["iso_times"] = len(ISO.findall(driver.find_element("tag name", "body").text))
    # Colours as drawn: fail-open red (critical), an operator's failover purple,
    # a health failover amber.
    figures["fail_open_colour"] = background("#records .b-critical")
    figures["operator_colour"] = background("#records .b-op")
    figures["wide_overflow"] = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    screenshot("status-page.png", 1400, False, 2000)

    # A phone.
    viewport(390, 844, True)
    figures["inner_width"] = driver.execute_script("return window.innerWidth")
    figures["phone_overflow"] = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    # Every cell is labelled with its own column's name, and shows it.
    figures["mislabelled"] = driver.execute_script(
        """const wrong = [];
           for (const table of document.querySelectorAll('table.cards')) {
             const names = [...table.tHead.rows[0].cells].map((th) => th.textContent);
             for (const row of table.tBodies[0].rows) {
               [...row.cells].forEach((td, i) => {
                 const shown = getComputedStyle(td, '::before').content;
                 if (td.dataset.label !== names[i] || shown !== JSON.stringify(names[i]))
                   wrong.push(table.id + ' ' + i + ' ' + td.dataset.label + ' ' + shown);
               });
             }
           }
           return wrong;""")
    figures["phone_thead"] = driver.execute_script(
        "return getComputedStyle(document.querySelector('#endpoints thead')).display")
    figures["phone_endpoint_card"] = driver.execute_script(
        """for (const row of document.querySelectorAll('#endpoints tbody tr'))
             if (row.cells[0].innerText.includes(arguments[0])) return row.innerText;
           return '';""", endpoint)
    screenshot("status-page-phone.png", 390, True, 1600)
    print(json.dumps(figures))
finally:
    driver.quit()

"""Drives the status page in a real headless Chromium (Debian's chromium and
chromium-driver, through selenium): the page loads and shows the records; a drain made
through the admin API shows on the page within its refresh period. Prints one JSON
line of figures. Usage: status_page.py ADMIN_ADDR ENDPOINT [SCREENSHOT.png]"""

import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

admin, endpoint = sys.argv[1], sys.argv[2]
screenshot = sys.argv[3] if len(sys.argv) > 3 else None

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1200,1000"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    started = time.monotonic()
    driver.get(f"http://{admin}/")
    wait = WebDriverWait(driver, 10, poll_frequency=0.05)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#records tbody tr")) > 0)
    loaded_ms = (time.monotonic() - started) * 1000
    records = driver.find_element(By.ID, "records").text
    endpoints = driver.find_element(By.ID, "endpoints").text

    # The page re-renders its tables on every refresh, so element handles go stale
    # between a find and a read; one script reads the row inside the page's own thread.
    def row_of(d):
        return d.execute_script(
            """for (const row of document.querySelectorAll('#endpoints tbody tr')) {
                   const text = row.innerText.replace(/\\t/g, ' ');
                   if (text.startsWith(arguments[0] + ' ')) return text;
               }
               return '';""", endpoint)

    assert "drained" not in row_of(driver), row_of(driver)
    body = json.dumps({"target": {"endpoint": endpoint}, "action": "drain",
                       "reason": "browser test"}).encode()
    request = urllib.request.Request(f"http://{admin}/v1/overrides", data=body, method="POST",
                                     headers={"content-type": "application/json"})
    urllib.request.urlopen(request, timeout=5).read()
    drained = time.monotonic()
    # The event stream refreshes at once, the poll every 5 s; the deadline leaves room
    # for a loaded CI machine (the time seen is reported, not asserted).
    WebDriverWait(driver, 20, poll_frequency=0.05).until(lambda d: "drained" in row_of(d))
    seen_ms = (time.monotonic() - drained) * 1000
    overrides = driver.find_element(By.ID, "overrides").text
    if screenshot:
        driver.save_screenshot(screenshot)
    print(json.dumps({"loaded_ms": round(loaded_ms), "drain_seen_ms": round(seen_ms),
                      "records": records, "endpoints": endpoints, "overrides": overrides}))
finally:
    driver.quit()

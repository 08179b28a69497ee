"""The browser studio end to end: Debian's headless Chromium drives the page of a real daemon.

The daemon (bundled synthetic model, ``--audio null``, examples/adaptive_soundtrack.toml)
serves ``--web``; Chromium (through /usr/bin/chromedriver, nothing downloaded) loads the
page, moves the RTPC slider, presses a state button, a piano key with the mouse and one
with the computer keyboard, types a prompt, and starts audio. Every change is checked in
``/status`` over real OSC UDP; the AudioWorklet must receive audio frames; the browser
log must hold no error. Set MRT_STUDIO_SCREENSHOT=PATH to save a screenshot of the page
(docs/studio.png is made this way).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
import wave
from collections.abc import Iterator

import pytest

from bridge.control import osc_api
from bridge.render import load_events
from tests.ci import missing
from tests.clients.daemon import free_port, running_daemon
from tests.test_serve_e2e import OscRig

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Root in a container with no network: no sandbox, no GPU, no background traffic, a fresh profile.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1440")


def _need(what: str) -> None:
    missing(what)  # a skip locally, a failure under CI=true


@pytest.fixture()
def browser(tmp_path) -> Iterator[object]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium is not installed (pip install -e '.[test]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            _need(f"{path} is missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def status_until(osc: OscRig, predicate, what: str, timeout: float = 10.0) -> dict:
    """Ask /status over UDP until ``predicate`` holds."""
    end = time.monotonic() + timeout
    while True:
        status = osc.status()
        if status is not None and predicate(status):
            return status
        if time.monotonic() > end:
            raise AssertionError(f"/status never showed {what}; last: {json.dumps(status)[:2000]}")
        time.sleep(0.05)


def wait_js(driver, script: str, what: str, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"page never showed {what}: {driver.execute_script('return JSON.stringify(window.studio && studio.audio)')}")


def test_studio_in_headless_chromium(browser, tmp_path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    web_port = free_port()
    with running_daemon(extra_args=["--web", str(web_port)], ready_line="web studio on") as daemon:
        osc = OscRig(daemon.osc_port)
        try:
            driver.get(f"http://127.0.0.1:{web_port}/")
            wait_js(driver, "return studio.ready && studio.connected && studio.statusCount > 0", "a status push")

            # Every control route of the address table has a control on the page (built from the table).
            on_page = set(driver.execute_script(
                "return [...document.querySelectorAll('[data-address]')].map(e => e.dataset.address)"))
            wanted = {r.address for r in osc_api.ROUTES if r.section != osc_api.QUERY}
            assert wanted <= on_page, f"routes without a control: {sorted(wanted - on_page)}"

            # RTPC slider: to its maximum with the keyboard, as a user would.
            slider = driver.find_element(By.CSS_SELECTOR, 'input[data-rtpc="danger"]')
            slider.click()
            slider.send_keys(Keys.END)
            status_until(osc, lambda s: s["game"]["rtpc"]["danger"]["target"] == 1.0, "danger = 1.0")

            # State button (quantised to the beat).
            driver.find_element(By.CSS_SELECTOR, 'button[data-state="combat"]').click()
            status_until(osc, lambda s: s["game"]["state"] == "combat", "state combat")

            # A piano key held with the mouse, then released.
            key = driver.find_element(By.CSS_SELECTOR, '.key[data-pitch="64"]')
            ActionChains(driver).click_and_hold(key).perform()
            status_until(osc, lambda s: s["control"]["notes_held"] == [64], "E4 held")
            ActionChains(driver).release(key).perform()
            status_until(osc, lambda s: s["control"]["notes_held"] == [], "E4 released")

            # The computer keyboard: A is middle C.
            ActionChains(driver).key_down("a").perform()
            status_until(osc, lambda s: s["control"]["notes_held"] == [60], "C4 held from the A key")
            ActionChains(driver).key_up("a").perform()
            status_until(osc, lambda s: s["control"]["notes_held"] == [], "C4 released")
            # Both pitches are now OFF (the model is told not to play them), no longer masked.
            status_until(osc, lambda s: s["control"]["conditioning"]["masked"] == 126, "60 and 64 off in the conditioning")

            # A prompt slot from the table's /style/prompt/<slot>.
            prompt = driver.find_element(By.CSS_SELECTOR, 'input[data-slot="3"][type="text"]')
            prompt.send_keys("warm strings", Keys.ENTER)
            status_until(osc, lambda s: s["control"]["slots"][3]["prompt"] == "warm strings", "slot 3 prompt")

            # Audio: PCM stream packets over the WebSocket into the AudioWorklet.
            driver.find_element(By.ID, "listen").click()
            audio = wait_js(driver, "const w = studio.audio.worklet; return w.frames >= 48000 && w.played > 0 && w",
                            "one second of audio in the AudioWorklet")
            assert audio["peak"] > 0.0, "the worklet received only silence"
            assert driver.execute_script("return studio.audio.bad") == 0

            # The piano roll got the conditioning the model received: the onset of E4, drums on in combat.
            driver.find_element(By.CSS_SELECTOR, 'button[data-trigger="hit"]').click()
            wait_js(driver, "return studio.frames.some(f => f.onsets.includes(64))", "the E4 onset in the roll")
            wait_js(driver, "return studio.frames.some(f => f.drums === 1)", "drums in the roll")
            wait_js(driver, "return studio.frames.some(f => f.onsets.includes(48))", "the 'hit' chord in the roll")
            assert driver.execute_script("return studio.errors") == []

            if os.environ.get("MRT_STUDIO_SCREENSHOT"):
                time.sleep(1.5)  # let the roll scroll a little past the chord
                driver.save_screenshot(os.environ["MRT_STUDIO_SCREENSHOT"])

            # The session's events (render's JSON Lines) and audio, as the page's links download them.
            base = f"http://127.0.0.1:{web_port}"
            events_file = tmp_path / "events.jsonl"
            events_file.write_bytes(urllib.request.urlopen(base + "/download/events.jsonl", timeout=10).read())
            events = [(e.address, e.args) for e in load_events(events_file)]
            for expected in [("/game/danger", (1.0,)), ("/state", ("combat",)), ("/note/on", (64, 100)),
                             ("/note/off", (64,)), ("/note/on", (60, 100)), ("/style/prompt/3", ("warm strings", 1.0)),
                             ("/trigger", ("hit",))]:
                assert expected in events, f"{expected} not in the session events"
            wav_file = tmp_path / "audio.wav"
            wav_file.write_bytes(urllib.request.urlopen(base + "/download/audio.wav", timeout=30).read())
            with wave.open(str(wav_file)) as w:
                assert (w.getframerate(), w.getnchannels()) == (48000, 2) and w.getnframes() >= 48000

            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == [], f"console errors: {severe}"
            web = osc.status()["engine"]["web"]
            assert web["pages"] == 1 and web["listeners"] == 1 and web["invalid"] == 0
        finally:
            osc.close()
    assert daemon.proc.returncode == 0, daemon.log_text()[-3000:]

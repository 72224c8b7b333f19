"""End to end: `elvmass serve` on a loopback port, the web page in headless Debian chromium (Playwright),
a genuine GE MUSE export uploaded through the page; the LV mass shown must equal `elvmass predict --json`.

The run writes a screenshot to .ci/artifacts/serve_page.png (and the test's tmp folder)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from elvmass.cli import app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / ".ci" / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(trained_bundle, tmp_path_factory):
    """`elvmass serve` as a user starts it, in a subprocess on a free loopback port."""
    port = _free_port()
    tmp = tmp_path_factory.mktemp("serve-tmp")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "elvmass", "serve", "--model", str(trained_bundle), "--port",
                             str(port), "--tmp-dir", str(tmp)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the service stopped: {proc.stdout.read().decode(errors='replace')}")
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the service did not come up in 180 s")
            time.sleep(0.5)
        yield url, tmp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _cli_json(bundle, path, *extra) -> dict:
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle), str(path), "--json", *extra])
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    return json.loads(line)


def test_the_page_shows_the_same_estimate_as_the_cli(served, trained_bundle, shared_data, tmp_path):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is needed at /usr/bin/chromium (apt-get install -y chromium; .ci/run does it)")
    url, tmp = served
    muse = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml"
    expected = _cli_json(trained_bundle, muse)
    expected_bsa = _cli_json(trained_bundle, muse, "--height-cm", "178", "--weight-kg", "84")
    assert expected["height_cm"] is None and expected_bsa["lvmi_g_m2"] is not None  # the file states no height

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 1500}, bypass_csp=True)  # the test's own waits evaluate strings
        try:
            external = []
            page = ctx.new_page()
            page.on("request", lambda r: external.append(r.url) if not r.url.startswith(url) else None)
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('model-info').textContent.includes('network')")
            page.set_input_files("#file", str(muse))
            page.click("#submit")
            page.wait_for_function("document.getElementById('lvm-value').textContent.length > 0", timeout=120_000)
            shown = page.text_content("#lvm-value")
            assert float(shown) == expected["lvm_g"]
            # the file has no height or weight: the page says so and asks for them
            assert "Not in the file: height, weight" in page.text_content("#missing")
            assert page.text_content("#lvh-value") == "not called"

            page.fill("#height_cm", "178")
            page.fill("#weight_kg", "84")
            page.click("#submit")
            page.wait_for_function("document.getElementById('lvmi-value').textContent !== '–'", timeout=120_000)
            assert float(page.text_content("#lvm-value")) == expected_bsa["lvm_g"]
            assert float(page.text_content("#lvmi-value")) == expected_bsa["lvmi_g_m2"]
            lvh = page.text_content("#lvh-value")
            assert lvh == ("yes" if expected_bsa["lvh"] else "no")
            assert "male cut-off" in page.text_content("#lvh-cutoff")
            # the device's QRS duration as stated in the file (RestingECGMeasurements/QRSDuration = 80)
            assert "80" in page.text_content("#params-body")
            page.wait_for_timeout(300)
            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot), full_page=True)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, ARTIFACTS / "serve_page.png")

            # a non-ECG upload gives a readable message on the page
            bad = tmp_path / "notes.txt"
            bad.write_text("this is not an ECG\n")
            page.set_input_files("#file", str(bad))
            page.click("#submit")
            page.wait_for_selector("#error:not([hidden])")
            assert "unsupported or unrecognised file format" in page.text_content("#error")
            assert external == [], f"the page fetched from elsewhere: {external}"
        finally:
            ctx.close()
    assert list(Path(tmp).iterdir()) == []  # every per-request folder was removed

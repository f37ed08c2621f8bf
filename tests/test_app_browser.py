"""End to end in a real browser: `python app.py` on 127.0.0.1 with a tiny model, driven by headless Chromium.

Needs Playwright (the `test` extra) and Debian's Chromium (`apt-get install chromium`); Playwright's own
browser downloads are never used. Under CI (`CI=true`) a browser that cannot start FAILS the test; outside
CI the test is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gigapiano.generation import split_notes
from tokenization import GigaPianoTokenizer

REPO = Path(__file__).resolve().parents[1]
FUR_ELISE = REPO / "examples" / "fur_elise.mid"
CHROMIUM = Path(os.environ.get("GIGAPIANO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
SERVER_START_TIMEOUT_S = 240
GENERATION_TIMEOUT_MS = 180_000


def browser_unavailable(reason: str) -> None:
    """In CI a missing or broken browser is a failure (the demo must be tested there); elsewhere a skip."""
    if IN_CI:
        pytest.fail(f"CI=true and the browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Debian Chromium with a fresh profile, through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        browser_unavailable(f"Playwright is not installed ({error}); pip install playwright (the test extra)")
    if not CHROMIUM.is_file():
        browser_unavailable(f"{CHROMIUM} does not exist; apt-get install chromium chromium-driver")
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                accept_downloads=True,
            )
        except Exception as error:  # noqa: BLE001 - any launch failure means "no browser here"
            browser_unavailable(f"Chromium did not start: {' '.join(str(error).split())[:500]}")
        yield context
        context.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(published_tiny_repo, tmp_path_factory):
    """`python app.py` serving the tiny published model as style "baroque" and as the base model (so the
    style strength slider has a base to weigh against) on 127.0.0.1 (one CPU thread)."""
    models = tmp_path_factory.mktemp("app-models")
    shutil.copytree(published_tiny_repo, models / "gigapiano-baroque")
    shutil.copytree(published_tiny_repo, models / "gigapiano-base")
    scratch = tmp_path_factory.mktemp("app-tmp")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TMPDIR": str(scratch),  # generated files and Gradio's cache stay in the test's folder
        "GRADIO_TEMP_DIR": str(scratch / "gradio"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("GIGAPIANO_MODELS", None)
    log = (scratch / "app.log").open("w")
    command = [sys.executable, str(REPO / "app.py"), "--models_dir", str(models), "--host", "127.0.0.1",
               "--port", str(port), "--threads", "1"]  # fmt: skip
    server = subprocess.Popen(command, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"app.py exited with {server.returncode}:\n{(scratch / 'app.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within {SERVER_START_TIMEOUT_S} s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def open_page(browser, app_url: str):
    """A new tab on the demo and the list its page errors (uncaught JavaScript exceptions) go to."""
    page = browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(app_url, wait_until="domcontentloaded")
    return page, page_errors


def download_midi(page, folder: Path) -> Path:
    """Click the offered MIDI's download link and save the file in `folder`."""
    from playwright.sync_api import expect

    link = page.locator("#midi-download a[download]").first
    expect(link).to_be_visible()
    assert link.get_attribute("download").endswith(".mid")
    with page.expect_download() as download_info:
        link.click()
    saved = folder / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    return saved


@pytest.mark.slow
def test_upload_generate_see_the_piano_roll_and_download_the_midi(browser, app_url, tmp_path):
    from playwright.sync_api import expect

    page, page_errors = open_page(browser, app_url)

    page.locator("#prompt-upload input[type=file]").set_input_files(str(FUR_ELISE))
    # Gradio renders a file's stem and extension in separate elements: match across the gap.
    expect(page.locator("#prompt-upload")).to_contain_text(re.compile(r"fur_elise\s*\.mid"), timeout=30_000)
    page.locator("#generate").click()

    # The piano roll appears, and it is the PNG the app drew.
    roll = page.locator("#pianoroll img")
    expect(roll).to_be_visible(timeout=GENERATION_TIMEOUT_MS)
    png = page.request.get(roll.get_attribute("src")).body()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    expect(page.locator("#summary")).to_contain_text("on a 53-note prompt")  # the upload was used

    # The MIDI is offered for download, and what downloads is a valid continuation of the upload.
    saved = download_midi(page, tmp_path)
    tokenizer = GigaPianoTokenizer()
    prompt = split_notes(tokenizer.encode_midi(FUR_ELISE))
    notes = split_notes(tokenizer.encode_midi(saved))
    assert saved.read_bytes()[:4] == b"MThd" and len(notes) == len(prompt) + 128  # the default length
    assert [(n.dt, n.pitch) for n in notes[: len(prompt)]] == [(n.dt, n.pitch) for n in prompt]
    assert not page_errors, page_errors
    page.close()


@pytest.mark.slow
def test_a_non_midi_upload_shows_an_error_and_no_result(browser, app_url, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(app_url, wait_until="domcontentloaded")
    fake = tmp_path / "fake.mid"
    fake.write_bytes(b"this is not a MIDI file")
    page.locator("#prompt-upload input[type=file]").set_input_files(str(fake))
    expect(page.locator("#prompt-upload")).to_contain_text(re.compile(r"fake\s*\.mid"), timeout=30_000)
    page.locator("#generate").click()
    expect(page.get_by_text("not a MIDI file").first).to_be_visible(timeout=60_000)
    expect(page.locator("#pianoroll img")).to_have_count(0)
    page.close()


@pytest.mark.slow
def test_the_style_strength_slider_and_knn_mode_reach_the_result_and_the_midi(browser, app_url, tmp_path):
    import symusic
    from playwright.sync_api import expect

    page, page_errors = open_page(browser, app_url)

    slider = page.locator("#style-strength")
    expect(slider).to_contain_text("0 = the base model, 1 = the style model, above 1 exaggerates")
    expect(slider.locator("input[type=range]")).to_have_value("1")  # the style model by default
    number = slider.locator("input[type=number]")
    number.fill("1.5")
    number.press("Enter")
    expect(slider.locator("input[type=range]")).to_have_value("1.5")
    page.get_by_label("knn").check()
    page.locator("#generate").click()  # no upload, no example: improvised

    summary = page.locator("#summary")
    expect(summary).to_contain_text("Style strength 1.5", timeout=GENERATION_TIMEOUT_MS)
    expect(summary).to_contain_text("model weights: base -0.5, baroque 1.5")
    expect(summary).to_contain_text("Anti-copy")
    expect(summary).to_contain_text("improvised without a prompt")

    saved = download_midi(page, tmp_path)
    assert saved.name.startswith("gigapiano-baroque-strength1.5-knn-seed")
    marker = " ".join(m.text for m in symusic.Score(str(saved)).markers)
    assert "style=baroque@1.5 style_strength=1.5 mode=knn" in marker
    assert len(split_notes(GigaPianoTokenizer().encode_midi(saved))) == 128
    assert not page_errors, page_errors
    page.close()

"""The explorer page in a real browser (headless Chromium): it renders, filters, plays and escapes.

Skips with the reason where Debian's chromium/chromium-driver are missing (``make test`` installs
them as it installs ffmpeg). One browser serves the whole module: starting Chromium costs seconds.
"""
from __future__ import annotations

import collections
import re
import struct

import pytest

from dataset_card import schema
from dataset_card.explore import explore
from tests.browser import chromium, console_errors, missing, wait_for
from tests.dataset_card.fakerun import make_rows, write_run
from dataset_card.explore import flags as F
from tests.dataset_card.test_explore import NASTY, fake_flag

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

MODEL = "Bokeh.documents[0].get_model_by_name({!r})"
VIEW = "Bokeh.index.find_one(" + MODEL + ")"


@pytest.fixture(scope="module")
def rows():
    r = make_rows()
    r[schema.MUSIC][0]["clip_id"] = NASTY
    r[schema.PAIRS][0]["music_clip_id"] = NASTY
    r[schema.IMAGES][1]["image_id"] = "ima\u00e9ge <&>"
    return r


@pytest.fixture(scope="module")
def page(tmp_path_factory, rows):
    """The page of ``rows``, flagged by a stand-in audit with known answers (test_explore.fake_flag)."""
    root = tmp_path_factory.mktemp("explore_browser")
    run = write_run(root / "run", {t: [dict(x) for x in rs] for t, rs in rows.items()})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "audit_function", lambda: fake_flag)
        return explore(run)


@pytest.fixture(scope="module")
def browser(page):
    with chromium() as driver:
        driver.get(page.page.as_uri())
        wait_for(driver, "window.__exploreReady", what="the page's DocumentReady")
        yield driver


def shadow(driver, name: str, selector: str):
    """An element inside the shadow DOM of the Bokeh widget called ``name``."""
    return driver.execute_script(f"return {VIEW.format(name)}.shadow_el.querySelector({selector!r})")


def shown_clips(driver) -> tuple[int, int]:
    """(points the plane draws, rows the table lists) for the clip source."""
    return tuple(driver.execute_script(
        f"return [{MODEL.format('clip_points')}.view.indices.count, {VIEW.format('clip_table')}.data.getLength()];"))


def test_page_loads_offline_without_console_errors(browser):
    assert console_errors(browser) == []
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith("file:") for u in fetched), fetched  # nothing from a network


def test_plane_shows_a_point_per_row(browser, rows):
    n_clips, n_images = len(rows[schema.MUSIC]), len(rows[schema.IMAGES])
    assert shown_clips(browser) == (n_clips, n_clips)
    drawn = browser.execute_script(
        f"const v = {VIEW.format('clip_points')}; return Array.from(v.glyph.sx).filter(Number.isFinite).length")
    assert drawn == n_clips
    assert browser.execute_script(f"return {MODEL.format('image_points')}.view.indices.count") == n_images


def test_filters_change_the_row_count(browser, rows):
    from selenium.webdriver.support.ui import Select

    per_split = collections.Counter(r["split"] for r in rows[schema.MUSIC])
    Select(shadow(browser, "split_filter", "select")).select_by_value("test")
    wait_for(browser, f"{MODEL.format('clip_points')}.view.indices.count === {per_split['test']}")
    assert shown_clips(browser) == (per_split["test"], per_split["test"])
    assert f"<b>{per_split['test']}</b> of {len(rows[schema.MUSIC])}" in browser.execute_script(
        f"return {MODEL.format('count')}.text")
    Select(shadow(browser, "split_filter", "select")).select_by_index(0)  # all splits
    shadow(browser, "search", "input").send_keys("NUMBER 2")  # case-insensitive, as typed
    matching = sum("number 2" in r["caption"].lower() for r in rows[schema.MUSIC])
    wait_for(browser, f"{MODEL.format('clip_points')}.view.indices.count === {matching}")
    assert shown_clips(browser) == (matching, matching) and 0 < matching < len(rows[schema.MUSIC])
    shadow(browser, "search", "input").clear()
    browser.execute_script(f"const s = {MODEL.format('search')}; s.value_input = ''; s.value = '';")
    wait_for(browser, f"{MODEL.format('clip_points')}.view.indices.count === {len(rows[schema.MUSIC])}")
    # caption-report flags: clips with any of the ticked flags
    flagged = [fake_flag(r["caption"], r["descriptors"], r["valence"], r["arousal"]) for r in rows[schema.MUSIC]]
    boxes = browser.execute_script(f"return {VIEW.format('flag_filter')}.shadow_el.querySelectorAll('input')")
    repeated = [bool(f.repeated_phrase or f.restated) for f in flagged]  # a phrase, or a fact, said twice
    for box, expected in ((boxes[0], sum(repeated)),
                          (boxes[1], sum(r or f.self_contradiction for r, f in zip(repeated, flagged)))):
        box.click()
        wait_for(browser, f"{MODEL.format('clip_points')}.view.indices.count === {expected}")
        assert shown_clips(browser) == (expected, expected) and 0 < expected < len(rows[schema.MUSIC])
    boxes[0].click()
    boxes[1].click()
    wait_for(browser, f"{MODEL.format('clip_points')}.view.indices.count === {len(rows[schema.MUSIC])}")


def test_colour_by_captioner(browser):
    from selenium.webdriver.support.ui import Select

    Select(shadow(browser, "colour_by", "select")).select_by_value("captioner")
    wait_for(browser, f"{MODEL.format('clip_points')}.glyph.fill_color.field === 'captioner'")
    assert "descriptor/none/template-v1" in browser.execute_script(f"return {MODEL.format('legend')}.text")
    Select(shadow(browser, "colour_by", "select")).select_by_value("split")
    assert console_errors(browser) == []


def test_clicking_a_point_plays_its_clip_from_the_song_preview(browser, rows):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    target = rows[schema.MUSIC][5]
    x, y, url = browser.execute_script(f"""
        const d = {MODEL.format('clips')}.data, i = d.clip_id.indexOf(arguments[0]);
        const pv = {VIEW.format('plane')};
        pv.el.scrollIntoView();
        const r = pv.el.getBoundingClientRect();
        return [r.left + pv.frame.x_scale.compute(d.valence[i]), r.top + pv.frame.y_scale.compute(d.arousal[i]),
                d.audio_url[i]];
    """, target["clip_id"])
    click = ActionBuilder(browser)  # a real mouse click on the canvas, at the point's pixel
    click.pointer_action.move_to_location(int(round(x)), int(round(y))).click()
    click.perform()
    player = "document.getElementById('player')"
    # the clip's window of its song's preview: playback starts at the window's start
    start, end = (float(t) for t in url.split("#t=")[1].split(","))
    wait_for(browser, f"{player}.readyState >= 2 && {player}.currentTime > {start}", timeout_s=30,
             what="the clicked clip to decode and play")
    src, duration, error = browser.execute_script(f"const p = {player}; return [p.src, p.duration, p.error];")
    assert src.endswith(url) and re.search(r"media/audio/[0-9a-f]{24}\.ogg#t=", src) and error is None
    assert end - start == pytest.approx(target["end_s"] - target["start_s"], abs=1e-3)
    song = [r for r in rows[schema.MUSIC] if r["song_id"] == target["song_id"]]
    assert duration == pytest.approx(max(r["end_s"] for r in song) - min(r["start_s"] for r in song), abs=0.05)
    # the fragment's end pauses the player there (media fragments, as the table's players use them)
    wait_for(browser, f"{player}.paused && {player}.currentTime >= {end} - 0.1", timeout_s=30,
             what="the player to stop at the clip's end")
    details = browser.execute_script(f"return {VIEW.format('details')}.shadow_el.textContent")
    assert target["caption"] in details and "tempo_bpm" in details
    assert console_errors(browser) == []


def test_ids_with_markup_stay_text(browser):
    browser.execute_script(f"""
        const c = {MODEL.format('clips')}; c.selected.indices = [c.data.clip_id.indexOf(arguments[0])];
    """, NASTY)
    details = wait_for(browser, f"{VIEW.format('details')}.shadow_el.textContent.includes('window.__pwned')")
    text = browser.execute_script(f"return {VIEW.format('details')}.shadow_el.textContent")
    assert NASTY in text  # shown literally, quotes, markup and non-ASCII intact
    assert details and browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script(f"return {VIEW.format('details')}.shadow_el.querySelectorAll('script').length") == 0
    assert console_errors(browser) == []


def test_screenshot(browser, tmp_path):
    path = tmp_path / "explore.png"
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(path))
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # PNG IHDR
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and width >= 1000 and height >= 600


def test_metadata_only_page_has_no_players(browser, page, tmp_path):
    """Last in the module: it navigates the shared browser away."""
    from dataset_card.build import build

    hub = build(page.page.parents[1], tmp_path / "hub", metadata_only=True).out_dir
    other = explore(hub, tmp_path / "page")
    browser.get(other.page.as_uri())
    wait_for(browser, "window.__exploreReady", what="the metadata-only page")
    assert browser.execute_script("return document.getElementById('no-audio').textContent").count("metadata-only")
    n_audio = browser.execute_script(f"""
        const t = {VIEW.format('clip_table')};
        return document.querySelectorAll('audio').length + t.shadow_el.querySelectorAll('audio').length""")
    assert n_audio == 0
    assert shown_clips(browser) == (other.clips, other.clips) and other.clips > 0
    assert console_errors(browser) == []

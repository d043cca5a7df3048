"""Live overlays in a real browser, both ways: burned into the video by the server, or drawn by
the page on a canvas from detection data sent over the WebRTC data channel.

The live view serves a picture whose content says which detection belongs to it: a white block
that jumps between two places a few times a second, with the detection box (and the zone's
state) following it on the very same frames. So the test can check, frame by frame in Chromium,
that the canvas shows the box of the frame on screen and not of some frame before or after.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from playwright.sync_api import Browser, Page
from test_browser import ARTIFACTS, serve, sign_in
from test_dashboard import Health, make_accounts, redis_server

from alerts.bus import AlertBus
from alerts.store import AlertStore
from bondwatch.site import Site, parse_site
from dashboard.app import create_app
from detectors.types import Detection, DetectionBatch
from streams.frame import Frame

SITE = """
name: overlay test
cameras:
  - {id: cam, name: bench, url: "rtsp://127.0.0.1:8554/cam"}
zones:
  - {id: cage, camera: cam, kind: restricted, polygon: [[420, 200], [620, 200], [620, 340], [420, 340]]}
"""
W, H = 640, 360
GREY = 60
# The white block at each of its two places, and the detection box around it (20 px margin, so
# the box's outline lies on grey). The second box stands in the zone (its foot point is inside)
# while its left edge, where the test looks, is outside the zone's tint.
BLOCKS = [(100, 110, 200, 230), (430, 110, 530, 230)]
MARGIN = 20
FLIP_HZ = 6.0  # the block changes place this often: about every second video frame at 12 fps


def box_of(block: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = block
    return (x1 - MARGIN, y1 - MARGIN, x2 + MARGIN, y2 + MARGIN)


class JumpingLive:
    """A LiveView whose frame `k` shows the block at BLOCKS[k % 2], detected there on frame k."""

    def __init__(self, site: Site):
        self.site = site
        self.images = []
        for x1, y1, x2, y2 in BLOCKS:
            image = np.full((H, W, 3), GREY, np.uint8)
            image[y1:y2, x1:x2] = 255
            self.images.append(image)
        self.t0 = time.time()

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        k = int((time.time() - self.t0) * FLIP_HZ)
        ts = self.t0 + k / FLIP_HZ
        det = Detection("person", 0.87, box_of(BLOCKS[k % 2]), track=7)
        return Frame(camera, k, k / FLIP_HZ, ts, self.images[k % 2]), DetectionBatch(
            camera, k, k / FLIP_HZ, ts, W, H, (det,)
        )

    def health(self) -> dict[str, Health]:
        return {"cam": Health("cam", "live", fps=FLIP_HZ, frames=1, last_frame_ts=time.time())}


@dataclass(frozen=True)
class Stack:
    url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    db = tmp_path_factory.mktemp("overlays") / "bondwatch.db"
    store = AlertStore(f"sqlite:///{db}")
    with redis_server() as redis_url:
        bus = AlertBus(redis_url)
        app = create_app(JumpingLive(parse_site(SITE)), store, bus, make_accounts(db), title="overlays")
        with serve(app) as url:
            yield Stack(url)
        bus.close()
    store.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    pg = context.new_page()
    yield pg
    context.close()


# Runs in the page, for every presented frame during `seconds`: where the block is in the video
# (by its pixels), which box the canvas shows, and the pixels under the box's left edge in the
# video and on the canvas.
SAMPLER = """
async ([seconds, blocks, margin]) => {
  const video = document.querySelector('video[data-camera="cam"]');
  const overlay = video.parentElement.querySelector('canvas.overlay');
  const scratch = document.createElement('canvas');
  const sctx = scratch.getContext('2d', {willReadFrequently: true});
  const octx = overlay.getContext('2d', {willReadFrequently: true});
  const out = [];
  const end = performance.now() + seconds * 1000;
  await new Promise((resolve) => {
    const onFrame = (now, meta) => {
      const w = video.videoWidth, h = video.videoHeight;
      // After the page's own callback (registered first) has painted the canvas for this frame.
      if (w && h && overlay.dataset.overlays) {
        scratch.width = w; scratch.height = h;
        sctx.drawImage(video, 0, 0, w, h);
        const lum = ([x, y]) => {
          const d = sctx.getImageData(x, y, 1, 1).data;
          return (d[0] + d[1] + d[2]) / 3;
        };
        const centres = blocks.map(([x1, y1, x2, y2]) => [(x1 + x2) >> 1, (y1 + y2) >> 1]);
        const shows = centres.map(lum);
        const place = shows[0] > 200 && shows[1] < 120 ? 0 : shows[1] > 200 && shows[0] < 120 ? 1 : -1;
        // The box's left edge, in the canvas's pixels (the video is letterboxed: object-fit contain).
        const dpr = window.devicePixelRatio || 1;
        const cw = overlay.clientWidth, ch = overlay.clientHeight;
        const fit = Math.min(cw / w, ch / h), ox = (cw - w * fit) / 2, oy = (ch - h * fit) / 2;
        const edges = blocks.map(([x1, y1, x2, y2]) => [x1 - margin, (y1 + y2) >> 1]);
        const canvasAt = ([x, y]) => Array.from(
          octx.getImageData(Math.floor((ox + x * fit) * dpr), Math.floor((oy + y * fit) * dpr), 1, 1).data);
        out.push({
          place, rtp: meta.rtpTimestamp,
          videoEdge: edges.map(lum),
          canvasEdge: edges.map(canvasAt),
          boxes: overlay.dataset.boxes, sync: overlay.dataset.sync, overlays: overlay.dataset.overlays,
        });
      }
      if (performance.now() < end) video.requestVideoFrameCallback(onFrame); else resolve();
    };
    video.requestVideoFrameCallback(onFrame);
  });
  return out;
}
"""


def watch(page: Page, url: str, overlays: str, seconds: float) -> list[dict]:
    sign_in(page, url, "officer")
    page.goto(f"{url}/?overlays={overlays}")
    page.wait_for_function(
        """() => {
            const v = document.querySelector('video[data-camera="cam"]');
            return v && v.getVideoPlaybackQuality().totalVideoFrames > 12;
        }""",
        timeout=45_000,
    )
    page.wait_for_function(
        f"""() => document.querySelector('.tile[data-camera="cam"] canvas.overlay')
                .dataset.overlays === '{overlays}'""",
        timeout=10_000,
    )
    return page.evaluate(SAMPLER, [seconds, BLOCKS, MARGIN])


def is_person_colour(rgba: list[int]) -> bool:
    r, g, b, a = rgba
    return a > 200 and g > 150 and b > 150 and r < 120  # rgb(40, 200, 230), the person colour


def test_overlays_drawn_in_browser_from_the_data_channel_in_step_with_the_video(stack: Stack, page: Page):
    samples = watch(page, stack.url, "browser", seconds=4)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator('.tile[data-camera="cam"]').screenshot(path=ARTIFACTS / "live-overlay-browser.png")
    known = [s for s in samples if s["place"] in (0, 1)]
    assert len(known) >= 20, f"too few readable frames: {len(samples)} sampled, {len(known)} readable"
    assert all(s["overlays"] == "browser" and s["boxes"] == "1" for s in known)
    # Chromium gives each frame's RTP timestamp, and the messages carry the server's stamp.
    assert {s["sync"] for s in known} == {"rtp"}
    # The video itself is clean: no outline burned in where the box is.
    assert all(max(s["videoEdge"]) < 100 for s in known), [s["videoEdge"] for s in known][:5]
    # The canvas shows the box of the frame on screen: its left edge, in the person colour,
    # where the block is now, and nothing at the other place.
    wrong = [
        s
        for s in known
        if not is_person_colour(s["canvasEdge"][s["place"]]) or s["canvasEdge"][1 - s["place"]][3] > 0
    ]
    assert len(wrong) <= 0.1 * len(known), (
        f"{len(wrong)} of {len(known)} frames showed the other frame's box: {wrong[:3]}"
    )


def test_overlays_burned_in_leave_the_canvas_empty(stack: Stack, page: Page):
    samples = watch(page, stack.url, "burned", seconds=2)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator('.tile[data-camera="cam"]').screenshot(path=ARTIFACTS / "live-overlay-burned.png")
    known = [s for s in samples if s["place"] in (0, 1)]
    assert len(known) >= 8, f"too few readable frames: {len(samples)} sampled, {len(known)} readable"
    assert all(s["overlays"] == "burned" and s["boxes"] == "0" for s in known)
    assert all(s["canvasEdge"][0][3] == 0 and s["canvasEdge"][1][3] == 0 for s in known)
    # The outline is in the video's pixels, around the block where it is on that frame.
    burned = [s for s in known if s["videoEdge"][s["place"]] > 100]
    assert len(burned) >= 0.9 * len(known), [s["videoEdge"] for s in known][:5]

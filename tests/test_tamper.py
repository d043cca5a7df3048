"""Tamper detection on real footage: PETS is the normal scene, tampering is simulated on it.

Each row plays the clip (sampled at the detector's 2 per second of video time) with one
change applied between START_T and END_T, and checks which events come out and when.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from rtsp import make_h264_mp4

from alerts.explain import untranslated
from bondwatch.site import Camera
from streams.camera import CameraHealth, CameraStream
from streams.frame import Frame
from streams.tamper import TamperConfig, TamperDetector, TamperEvent

PETS = Path(__file__).parents[1].parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"
CONFIG = TamperConfig()
STEP = CONFIG.sample_s
START_T = 10.0  # the tampering starts here, after the detector has learned the scene
END_T = 25.0  # and ends here; the clip goes on as normal afterwards

Change = Callable[[np.ndarray, float, np.ndarray], np.ndarray]  # (frame, t, frame at START_T)


@pytest.fixture(scope="module")
def pets_frames() -> list[tuple[float, np.ndarray]]:
    """The whole PETS clip (79.5 s) at one frame per `STEP` of video time."""
    cap = cv2.VideoCapture(str(PETS))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    every = round(STEP * fps)
    frames = []
    index = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if index % every == 0:
            frames.append((index / fps, image))
        index += 1
    cap.release()
    assert len(frames) > 150, f"could not read {PETS}"
    return frames


def play(
    frames: list[tuple[float, np.ndarray]], change: Change, until: float = 40.0
) -> list[tuple[float, TamperEvent]]:
    """Feed the clip with `change` applied inside [START_T, END_T); (time seen, event) pairs."""
    detector = TamperDetector("cam1", CONFIG)
    at_start = next(image for t, image in frames if t >= START_T)
    seen = []
    for index, (t, image) in enumerate(frames):
        if t > until:
            break
        if START_T <= t < END_T:
            image = change(image, t, at_start)
        frame = Frame("cam1", index, t, 1e9 + t, image)
        seen += [(t, e) for e in detector.feed(frame)]
    return seen


def black(image: np.ndarray, t: float, _: np.ndarray) -> np.ndarray:
    """Lens taped over or painted: near-black with a little sensor noise."""
    noise = np.random.default_rng(int(t * 10)).normal(6, 2, image.shape)
    return np.clip(noise, 0, 255).astype(np.uint8)


def hand(image: np.ndarray, t: float, _: np.ndarray) -> np.ndarray:
    """A hand over the lens: one out-of-focus skin tone, with shading, over 95 % of the picture."""
    out = image.copy()
    h, w = image.shape[:2]
    shade = np.linspace(-5, 5, h)[:, None, None]
    skin = np.clip(np.array([120.0, 150.0, 200.0]) + shade, 0, 255)
    out[:, : int(w * 0.95)] = np.broadcast_to(skin, (h, 1, 3)).astype(np.uint8)
    return out


def moved(image: np.ndarray, t: float, _: np.ndarray) -> np.ndarray:
    """The camera knocked aside: the view shifted by 15 % and rotated by 3 degrees."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 3.0, 1.0)
    m[0, 2] += 0.15 * w
    m[1, 2] += 0.05 * h
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def blurred(image: np.ndarray, t: float, _: np.ndarray) -> np.ndarray:
    """Lens smeared or focus turned: Gaussian blur, sigma 8 pixels."""
    return cv2.GaussianBlur(image, (0, 0), 8)


def frozen(image: np.ndarray, t: float, at_start: np.ndarray) -> np.ndarray:
    """The camera keeps streaming one picture: exactly the frame at START_T, repeated."""
    return at_start


def lighting(gain_to: float) -> Change:
    """Lights dimmed or brightened gradually: gain ramps to `gain_to` over 5 s, then stays."""

    def change(image: np.ndarray, t: float, _: np.ndarray) -> np.ndarray:
        gain = 1 + (gain_to - 1) * min(1.0, (t - START_T) / 5.0)
        return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)

    return change


def gamma(g: float) -> Change:
    """Daylight shifting the tone curve: gamma `g` (fixed, within the change window)."""
    lut = np.clip(255 * (np.arange(256) / 255) ** g, 0, 255).astype(np.uint8)
    return lambda image, t, _: cv2.LUT(image, lut)


def close_person(image: np.ndarray, t: float, _: np.ndarray) -> np.ndarray:
    """Someone right in front of the lens for 3 s: a dark ellipse over 40 % of the picture."""
    if t >= START_T + 3:
        return image
    out = image.copy()
    h, w = image.shape[:2]
    ax, ay = int(w * 0.42), int(0.4 * h * w / (np.pi * w * 0.42))
    cx = int(w * (0.35 + 0.1 * (t - START_T)))  # walking across
    cv2.ellipse(out, (cx, h // 2), (ax, ay), 0, 0, 360, (35, 30, 40), -1)
    return out


def unchanged(image: np.ndarray, t: float, _: np.ndarray) -> np.ndarray:
    return image


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        pytest.param(black, "covered", id="lens-blacked-out"),
        pytest.param(hand, "covered", id="hand-over-lens"),
        pytest.param(moved, "moved", id="view-moved"),
        pytest.param(blurred, "blurred", id="heavy-blur"),
        pytest.param(frozen, "frozen", id="frozen-picture"),
    ],
)
def test_tampering_is_raised_once_in_time_and_cleared(pets_frames, change: Change, kind: str) -> None:
    events = play(pets_frames, change)
    assert [(e.kind, e.active) for _, e in events] == [(kind, True), (kind, False)], events
    (seen_on, raised), (seen_off, cleared) = events
    hold = getattr(CONFIG, f"{kind}_s")
    assert START_T <= raised.t <= START_T + STEP  # stamped when it began, not when confirmed
    assert seen_on <= START_T + hold + STEP
    assert raised.ts == pytest.approx(1e9 + raised.t)
    assert raised.detail and raised.camera == "cam1"
    assert untranslated(raised.detail) == []  # the alert's explanation reads in Chinese too
    assert END_T <= cleared.t <= END_T + STEP
    assert seen_off <= END_T + CONFIG.clear_s + STEP


@pytest.mark.parametrize(
    ("change", "until"),
    [
        pytest.param(unchanged, 80.0, id="people-walking-past-whole-clip"),
        pytest.param(lighting(0.65), 40.0, id="lights-dimmed-35pct"),
        pytest.param(lighting(1.35), 40.0, id="lights-brightened-35pct"),
        pytest.param(gamma(1.5), 40.0, id="gamma-darker"),
        pytest.param(gamma(0.7), 40.0, id="gamma-lighter"),
        pytest.param(close_person, 40.0, id="person-close-to-lens-3s"),
    ],
)
def test_ordinary_life_raises_nothing(pets_frames, change: Change, until: float) -> None:
    assert play(pets_frames, change, until) == []


def test_a_still_source_without_noise_never_reports_frozen(pets_frames) -> None:
    """A picture that never changed while learning gives no noise floor to compare with."""
    _, still = pets_frames[0]
    detector = TamperDetector("cam1", CONFIG)
    events = [e for i in range(120) for e in detector.feed(Frame("cam1", i, i * STEP, i, still))]
    assert events == []


@pytest.fixture(scope="module")
def half_black_mp4(tmp_path_factory) -> Path:
    """20 s of PETS as H.264 whose second half is black (a lens covered at t = 10 s)."""
    src = make_h264_mp4(PETS, seconds=20)
    out = tmp_path_factory.mktemp("tamper") / "half-black.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src),
         "-vf", "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,10)'",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p",
         str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return out


def test_camera_stream_reports_a_covered_lens(half_black_mp4: Path) -> None:
    events: list[TamperEvent] = []
    done = threading.Event()

    def on_state(h: CameraHealth) -> None:
        if h.state == "offline":  # the file played to its end
            done.set()

    stream = CameraStream(
        Camera(id="cam1", url=str(half_black_mp4)),
        on_state=on_state,
        on_tamper=events.append,
        realtime=False,
        loop_files=False,
    )
    stream.start()
    try:
        assert done.wait(60), "the file did not play to its end"
    finally:
        assert stream.stop()
    assert [(e.kind, e.active) for e in events] == [("covered", True)]
    assert 10.0 <= events[0].t <= 10.0 + 2 * STEP
    health = stream.health()
    assert health.tamper == "covered"
    assert health.clock == "arrival" and health.drift_s is None  # a file has no camera clock

"""Shared fixtures: real footage, a real redis-server, the bundled model."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from pg import PostgresServer
from playwright.sync_api import Browser, sync_playwright

from bondwatch.redis_server import RedisServer

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
PETS_DIR = ROOT.parent / "shared" / "data" / "pets2009-s2l1"
PETS_VIDEO = PETS_DIR / "vtest.avi"
PETS_LABELS = PETS_DIR / "gt-frames-0001-0400.txt"
MODEL = ROOT / "models" / "bondwatch-person.onnx"
# Debian's Chromium, headless, as root, on a machine with no outside network.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic",
]  # fmt: skip


def pattern_clip(out: Path, fps: int, seconds: float = 4, size: str = "320x240") -> Path:
    """ffmpeg's moving test pattern as H.264, a keyframe every second, no B-frames."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(fps), "-bf", "0",
         "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def wait_for(condition: Callable[[], T], timeout_s: float, interval_s: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy or time runs out; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval_s)
    return condition()


@pytest.fixture(scope="session")
def pets_video() -> Path:
    assert PETS_VIDEO.is_file(), f"the PETS clip is missing at {PETS_VIDEO}"
    return PETS_VIDEO


@pytest.fixture(scope="session")
def pets_first_400(tmp_path_factory, pets_video) -> Path:
    """Frames 1-400 of the PETS clip (the labelled part), H.264 at 10 fps."""
    out = tmp_path_factory.mktemp("pets") / "pets-0001-0400.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(pets_video), "-frames:v", "400",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "10", "-bf", "0",
         "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server process on a free loopback port, stopped after the test."""
    with RedisServer(tmp_path / "redis", persist=False) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL 15 server for the whole session (started on first use)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind BondWatch supports: an SQLite file, then a new
    database on the session's PostgreSQL server (dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bondwatch.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.database()
    yield url
    server.drop(url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, one per test module."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()

"""The demo scanner plays the rendered scan feed in step with the looping demo cameras."""

from __future__ import annotations

from bondwatch.demo import Demo, DemoScanner
from bondwatch.scanbus import ScanBus, ScanReader
from bondwatch.scans import ScanEvent
from bondwatch.site import parse_site

SITE = """
cameras: [{id: bench, url: a.mp4}, {id: store, url: b.mp4}]
zones:
  - {id: S01, camera: bench, kind: station, station: S01, polygon: [[0, 0], [10, 0], [10, 10]]}
  - {id: cage, camera: store, kind: restricted, polygon: [[0, 0], [10, 0], [10, 10]]}
"""


def test_scans_and_badges_are_published_when_their_camera_shows_them(redis_server):
    demo = Demo(
        site=parse_site(SITE),
        scans=[
            ScanEvent(t=2.0, station="S01", serial="SN1"),
            ScanEvent(t=3.0, kind="badge", zone="cage", badge="B7"),
        ],
        loop_s=10.0,
    )
    bus = ScanBus(redis_server.url)
    reader = ScanReader(redis_server.url)
    scanner = DemoScanner(demo, bus, position=lambda camera: None)
    t0 = 1_800_000_000.0
    for t in (1.0, 2.5, 3.5, 11.0, 12.5):  # video time keeps counting over the loop
        scanner._play("bench", scanner.scans["bench"], t, t0 + t)
        scanner._play("store", scanner.scans["store"], t, t0 + t)
    got = reader.read(block_ms=100)
    assert [(s.kind, s.station or s.zone, s.ts.timestamp()) for s in got] == [
        ("scan", "S01", t0 + 2.0),
        ("badge", "cage", t0 + 3.0),
        ("scan", "S01", t0 + 12.0),
    ]
    assert got[1].model_extra == {"badge": "B7"}
    bus.close()
    reader.close()

"""The built-in demo used by `bondwatch run` with no site file: a simulated workshop.

On first start the demo scenario (examples/scenarios/demo.yaml, three cameras, 150 s) is
rendered once under the data directory; its videos then loop as cameras, and its scan feed
is played onto the scan stream in step with them, as the factory's scanners would send it.
Nothing outside the repository is needed.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bondwatch.scanbus import LiveScan, ScanBus
from bondwatch.scans import ScanEvent, load_scans
from bondwatch.site import Site, load_site

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "examples" / "scenarios" / "demo.yaml"
SEED = 0

# (video time t, wall-clock ts) of the newest frame a camera has shown, or None.
Position = Callable[[str], tuple[float, float] | None]


class DemoError(Exception):
    pass


@dataclass(frozen=True)
class Demo:
    site: Site
    scans: list[ScanEvent]  # replay form: `t` in the station camera's video time
    loop_s: float  # the videos' length: cameras loop them, video time keeps counting


def prepare_demo(data_dir: Path) -> Demo:
    """Render the demo scenario once (a few minutes), then reuse it."""
    from sim.render import render_scenario
    from sim.scenario import ScenarioError

    out = data_dir / "demo" / f"seed{SEED}"
    done = out / "rendered.json"
    if not done.is_file() or done.stat().st_mtime < SCENARIO.stat().st_mtime:
        print("First start: rendering the demo workshop cameras (once, a few minutes)...", flush=True)
        try:
            result = render_scenario(SCENARIO, out, seed=SEED, progress=_progress)
        except ScenarioError as e:
            raise DemoError(str(e)) from None
        print(file=sys.stderr, flush=True)
        done.write_text(json.dumps({"frames": result.frames, "fps": result.fps}))
    meta = json.loads(done.read_text())
    return Demo(
        site=load_site(out / "site.yaml"),
        scans=load_scans(out / "scans.jsonl"),
        loop_s=meta["frames"] / meta["fps"],
    )


def _progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 50) == 0:
        print(f"\r  rendered {done}/{total} frames ({100 * done // total}%)", end="", file=sys.stderr)


class DemoScanner(threading.Thread):
    """Publishes each scripted scan or badge event when its camera shows that moment of the loop."""

    def __init__(self, demo: Demo, bus: ScanBus, position: Position):
        super().__init__(name="demo-scanner", daemon=True)
        self.bus = bus
        self.position = position
        self.loop_s = demo.loop_s
        # A scan belongs to its station's camera, a badge event to its zone's camera.
        station_camera = {z.station: z.camera for z in demo.site.zones if z.station}
        zone_camera = {z.id: z.camera for z in demo.site.zones}
        self.scans: dict[str, list[ScanEvent]] = {}
        for scan in demo.scans:
            key = scan.station if scan.kind == "scan" else scan.zone
            camera = (station_camera if scan.kind == "scan" else zone_camera).get(key or "")
            if camera is not None and scan.t is not None:
                self.scans.setdefault(camera, []).append(scan)
        self.last_t: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            for camera, scans in self.scans.items():
                pos = self.position(camera)
                if pos is not None:
                    self._play(camera, scans, *pos)

    def _play(self, camera: str, scans: list[ScanEvent], t: float, ts: float) -> None:
        last = self.last_t.get(camera)
        self.last_t[camera] = t
        if last is None or t <= last:
            return
        due = []
        for i, scan in enumerate(scans):
            assert scan.t is not None
            for k in range(math.floor(last / self.loop_s), math.floor(t / self.loop_s) + 1):
                at = scan.t + k * self.loop_s
                if last < at <= t:
                    fields = scan.model_dump(exclude_none=True, exclude={"t", "ts"})
                    when = datetime.fromtimestamp(ts - (t - at), UTC)
                    due.append(LiveScan(**fields, id=f"demo-{camera}-{k}-{i}", ts=when))
        if due:
            self.bus.publish(due)
            logger.info("demo scanner: %d event(s) at %s", len(due), camera)

    def stop(self) -> None:
        self.stopping.set()
        self.join(2)

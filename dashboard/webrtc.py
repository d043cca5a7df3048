"""Live view over WebRTC: the only module that talks to aiortc.

One paced source track per camera renders the newest frame with overlays; a MediaRelay fans
it out to every viewer, so ten officers watching one camera cost one render, not ten. Every
peer connection is registered here and closed when its browser leaves or the app stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from dashboard.live import LiveView
from dashboard.overlay import render

logger = logging.getLogger(__name__)

CLOCK_RATE = 90_000  # the RTP video clock
TIME_BASE = Fraction(1, CLOCK_RATE)


class UnknownCamera(LookupError):
    """The browser asked for a camera that is not in the site file."""


class CameraTrack(MediaStreamTrack):
    """A video track that paces itself at `fps` and always sends the newest frame.

    It never queues: when ingest runs ahead, frames in between are skipped; when ingest
    stalls, the last picture is repeated so the browser keeps a live, timestamped stream.
    """

    kind = "video"

    def __init__(self, live: LiveView, camera: str, fps: float):
        super().__init__()
        self._live = live
        self._camera = camera
        self._zones = live.site.zones_of(camera)
        self._step = int(CLOCK_RATE / fps)
        self._start: float | None = None
        self._pts = 0
        self._key: tuple[int, int] | None = None
        self._image: np.ndarray | None = None

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._step
            delay = self._start + self._pts / CLOCK_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        image = await self._newest_image()
        out = VideoFrame.from_ndarray(image, format="bgr24")
        out.pts = self._pts
        out.time_base = TIME_BASE
        return out

    async def _newest_image(self) -> np.ndarray:
        """Render only when the frame or the detections changed; drawing runs off the loop."""
        frame, batch = self._live.latest(self._camera)
        key = (
            frame.index if frame is not None else -1,
            batch.index if batch is not None else -1,
        )
        if self._image is None or key != self._key:
            self._image = await asyncio.to_thread(render, self._camera, self._zones, frame, batch)
            self._key = key
        return self._image


@dataclass
class _Source:
    track: CameraTrack
    relay: MediaRelay = field(default_factory=MediaRelay)
    viewers: set[RTCPeerConnection] = field(default_factory=set)


class LiveVideo:
    """Answers browser offers and owns every peer connection and camera source."""

    def __init__(self, live: LiveView, fps: float = 12.0):
        self._live = live
        self._fps = fps
        self._cameras = {c.id for c in live.site.cameras}
        self._sources: dict[str, _Source] = {}
        self._peers: set[RTCPeerConnection] = set()

    @property
    def peers(self) -> int:
        return len(self._peers)

    async def answer(self, camera: str, sdp: str, type_: str) -> RTCSessionDescription:
        """Accept a browser's offer for `camera`; raises UnknownCamera or ValueError."""
        if camera not in self._cameras:
            raise UnknownCamera(camera)
        # No ICE servers: the dashboard is served on the site's LAN and the default public
        # STUN server is unreachable there (and would only delay gathering).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._peers.add(pc)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            logger.info("camera %s: viewer connection %s", camera, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self._close(camera, pc)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type_))
            source = self._source(camera)
            source.viewers.add(pc)
            pc.addTrack(source.relay.subscribe(source.track, buffered=False))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._close(camera, pc)
            raise
        return pc.localDescription

    def _source(self, camera: str) -> _Source:
        source = self._sources.get(camera)
        if source is None:
            source = _Source(CameraTrack(self._live, camera, self._fps))
            self._sources[camera] = source
        return source

    async def _close(self, camera: str, pc: RTCPeerConnection) -> None:
        """Forget `pc`; the camera's source stops rendering when its last viewer is gone."""
        self._peers.discard(pc)
        source = self._sources.get(camera)
        if source is not None:
            source.viewers.discard(pc)
            if not source.viewers:
                source.track.stop()
                del self._sources[camera]
        await pc.close()

    async def close(self) -> None:
        """Close every peer connection (the browsers see the stream end) and every source."""
        peers = [(cam, pc) for cam, s in self._sources.items() for pc in s.viewers]
        orphans = self._peers - {pc for _, pc in peers}
        await asyncio.gather(
            *(self._close(cam, pc) for cam, pc in peers),
            *(pc.close() for pc in orphans),
            return_exceptions=True,
        )
        self._peers.clear()
        logger.info("live video closed (%d peer connections)", len(peers) + len(orphans))

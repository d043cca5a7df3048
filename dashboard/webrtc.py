"""Live view over WebRTC: the only module that talks to aiortc.

One paced source track per camera renders the newest frame with overlays and encodes it to
VP8 once; a MediaRelay hands the same packets to every viewer, so ten officers watching one
camera cost one render and one encode, not ten. (aiortc would otherwise run one encoder per
viewer: 4 viewers of one 1280x720 camera at 12 fps cost the service 4 encoders' CPU.) A new
viewer asks for a keyframe, and one comes every GOP_S anyway, so a viewer that lost a packet
recovers within a second. Every peer connection is registered here and closed when its browser
leaves or the app stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import Packet, VideoFrame
from av.video.frame import PictureType

from dashboard.live import LiveView
from dashboard.overlay import render

logger = logging.getLogger(__name__)

CLOCK_RATE = 90_000  # the RTP video clock
TIME_BASE = Fraction(1, CLOCK_RATE)
GOP_S = 1.0  # a keyframe at least this often
BITRATE = 1_500_000  # bits per second per camera: sharp 720p on a LAN


class UnknownCamera(LookupError):
    """The browser asked for a camera that is not in the site file."""


class CameraTrack(MediaStreamTrack):
    """A video track that paces itself at `fps`, always sends the newest frame, and sends it
    encoded (VP8 packets), so every viewer of the camera shares one encoder.

    It never queues: when ingest runs ahead, frames in between are skipped; when ingest
    stalls, the last picture is repeated so the browser keeps a live, timestamped stream.
    """

    kind = "video"

    def __init__(self, live: LiveView, camera: str, fps: float):
        super().__init__()
        self._live = live
        self._camera = camera
        self._zones = live.site.zones_of(camera)
        self._fps = fps
        self._step = int(CLOCK_RATE / fps)
        self._start: float | None = None
        self._pts = 0
        self._key: tuple[int, int] | None = None
        self._image: np.ndarray | None = None
        self._encoder: av.video.codeccontext.VideoCodecContext | None = None
        self._keyframe = True

    def request_keyframe(self) -> None:
        """A viewer joined: its decoder can start only at a keyframe."""
        self._keyframe = True

    async def recv(self) -> Packet:
        while True:
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
            keyframe, self._keyframe = self._keyframe, False
            packets = await asyncio.to_thread(self._encode, image, self._pts, keyframe)
            if packets:
                return packets[0]  # one per frame: the encoder runs without look-ahead

    def _encode(self, image: np.ndarray, pts: int, keyframe: bool) -> list[Packet]:
        h, w = image.shape[:2]
        enc = self._encoder
        if enc is None or (enc.width, enc.height) != (w, h):
            enc = self._encoder = _vp8_encoder(w, h, self._fps)
            keyframe = True
        frame = VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        if keyframe:
            frame.pict_type = PictureType.I
        packets = list(enc.encode(frame))
        for packet in packets:
            packet.time_base = TIME_BASE
        return packets

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


def _vp8_encoder(width: int, height: int, fps: float) -> av.video.codeccontext.VideoCodecContext:
    """Real-time VP8: no look-ahead (one packet out per frame in), a keyframe every GOP_S."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuv420p"
    enc.time_base = TIME_BASE
    enc.framerate = Fraction(fps).limit_denominator(1000)
    enc.bit_rate = BITRATE
    enc.gop_size = max(1, round(fps * GOP_S))
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "auto-alt-ref": "0"}
    # One thread: libvpx's own threads made a 640x360 frame take 200-300 ms on the busy 2-core
    # box (2-12 ms with one), which was 250 ms of glass-to-glass latency.
    enc.thread_count = 1
    return enc


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

    @property
    def encoders(self) -> int:
        """Cameras being encoded now: one each, however many watch it."""
        return len(self._sources)

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
            source = self._source(camera)
            source.viewers.add(pc)
            # Buffered: with shared encoded packets a dropped one would smear the picture until
            # the next keyframe; senders drain their queue as fast as they packetize it.
            track = source.relay.subscribe(source.track, buffered=True)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            # The packets are VP8: nothing else may be negotiated, so say so before the offer
            # is read (aiortc settles the codecs when it applies the remote description).
            vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
            transceiver.setCodecPreferences(vp8)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type_))
            source.track.request_keyframe()
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

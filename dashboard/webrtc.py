"""Live view over WebRTC: the only module that talks to aiortc.

One paced source track per camera encodes the newest frame to VP8 once; a MediaRelay hands the
same packets to every viewer, so ten officers watching one camera cost one encode, not ten.
(aiortc would otherwise run one encoder per viewer: 4 viewers of one 1280x720 camera at 12 fps
cost the service 4 encoders' CPU.) A new viewer asks for a keyframe, and one comes every GOP_S
anyway, so a viewer that lost a packet recovers within a second. Every peer connection is
registered here and closed when its browser leaves or the app stops.

The overlays (zones by state, boxes with track ids and classes, camera and time) reach the
browser one of two ways, chosen per viewer (`Overlays`):

- "burned": drawn into the pixels before the encode (dashboard/overlay.py `render`);
- "browser": the clean frame is encoded, and the same overlay as data (`overlay_message`) goes
  over a WebRTC data channel that the page opens ("overlay"); the page draws it on a canvas
  over the video. A message is sent only when the picture would change (new detections, a new
  second on the clock), stamped with the RTP timestamp of the first video frame it belongs to,
  so the page (requestVideoFrameCallback's rtpTimestamp) draws it from exactly that frame on,
  as the burned-in overlay would. A clean encode is also what relaying the camera's own H.264
  without re-encoding would need (not built: the browser would then also need H.264).

Both kinds of source share one relay per camera and kind. bench/overlay_modes.py measures both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import Packet, VideoFrame
from av.video.frame import PictureType

from dashboard.live import LiveView
from dashboard.overlay import overlay_message, placeholder, render
from detectors.types import DetectionBatch
from streams.frame import Frame

logger = logging.getLogger(__name__)

CLOCK_RATE = 90_000  # the RTP video clock
TIME_BASE = Fraction(1, CLOCK_RATE)
GOP_S = 1.0  # a keyframe at least this often
BITRATE = 1_500_000  # bits per second per camera: sharp 720p on a LAN
RTP_MOD = 1 << 32

Overlays = Literal["burned", "browser"]
# The default, by bench/overlay_modes.py on the 2-core box (two runs, 1280x720, 12 fps): drawing
# in the browser cost the service 0.94-0.95x the CPU of burning in with 1 viewer and 0.99-1.01x
# with 4, inside the spread between passes, at the same fps and glass-to-glass latency. The
# encode, not the drawing (about 2 ms a frame), is the cost, so burned-in stays the default: it
# works in any browser. "browser" pays off once the camera's own stream is relayed unencoded.
DEFAULT_OVERLAYS: Overlays = "burned"
OVERLAY_CHANNEL = "overlay"  # the data channel's label; the page creates it before its offer
CHANNEL_BACKLOG = 64 * 1024  # bytes queued on a viewer's channel beyond which messages are dropped


class UnknownCamera(LookupError):
    """The browser asked for a camera that is not in the site file."""


class CameraTrack(MediaStreamTrack):
    """A video track that paces itself at `fps`, always sends the newest frame, and sends it
    encoded (VP8 packets), so every viewer of the camera shares one encoder.

    It never queues: when ingest runs ahead, frames in between are skipped; when ingest
    stalls, the last picture is repeated so the browser keeps a live, timestamped stream.
    """

    kind = "video"

    def __init__(self, live: LiveView, camera: str, fps: float, overlays: Overlays = "burned"):
        super().__init__()
        self._live = live
        self._camera = camera
        self._overlays = overlays
        # "browser": (pts from which it holds, message JSON) of the last overlays, newest last.
        self.messages: deque[tuple[int, str]] = deque(maxlen=64)
        self._message_key: tuple[int, int] | None = None
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
        if self._overlays == "browser":
            self._note_overlay(frame, batch)
            if frame is not None:
                return frame.image
            if self._image is None:
                self._image = placeholder(self._camera)
            return self._image
        if self._image is None or key != self._key:
            # The site as it is now: zones edited in the dashboard show without a new connection.
            site = self._live.site
            zones, tz = site.zones_of(self._camera), site.timezone
            self._image = await asyncio.to_thread(render, self._camera, zones, frame, batch, tz)
            self._key = key
        return self._image

    def _note_overlay(self, frame: Frame | None, batch: DetectionBatch | None) -> None:
        """Record a new overlay message for the frame about to be encoded (pts `self._pts`) when
        what the browser draws would change: new detections, a new second of capture time."""
        key = (
            batch.index if batch is not None else -1,
            int(frame.ts) if frame is not None else -1,
        )
        if key == self._message_key:
            return
        self._message_key = key
        body = overlay_message(self._camera, self._live.site.zones_of(self._camera), frame, batch)
        self.messages.append((self._pts, json.dumps(body, separators=(",", ":"))))

    def message_at(self, pts: int) -> tuple[int, str] | None:
        """The overlay in force on the frame of `pts`: the newest message from at or before it."""
        for entry in reversed(self.messages):
            if entry[0] <= pts:
                return entry
        return None


class ViewerTrack(MediaStreamTrack):
    """One viewer's copy of a camera's shared packets ("browser" overlays): passes each packet
    on and sends the viewer, over its data channel, the overlay in force on that packet's frame,
    stamped with the RTP timestamp the viewer's sender gives that frame.

    aiortc stamps a frame `random origin + pts` and keeps the origin to itself; the sender's last
    stamp is readable, though, and when the sender asks for the next packet it has sent all of
    the previous one, so origin = last stamp - previous pts. (Should a later aiortc hide that
    stamp, messages go without `rtp` and the page draws each on arrival instead.)
    """

    kind = "video"

    def __init__(self, source: CameraTrack, inner: MediaStreamTrack):
        super().__init__()
        self._source = source
        self._inner = inner
        self.sender: RTCRtpSender | None = None
        self.channel: RTCDataChannel | None = None
        self._last_pts: int | None = None
        self._origin: int | None = None
        self._sent_pts: int | None = None  # pts of the message last sent on this channel
        self.sent = 0
        self.dropped = 0

    async def recv(self) -> Packet:
        self._learn_origin()
        packet = await self._inner.recv()
        self._last_pts = packet.pts
        self._send_overlay(packet.pts)
        return packet

    def _learn_origin(self) -> None:
        if self._last_pts is None or self.sender is None:
            return
        stamp = getattr(self.sender, "_RTCRtpSender__rtp_timestamp", None)
        if isinstance(stamp, int) and stamp:
            origin = (stamp - self._last_pts) % RTP_MOD
            if self._origin is not None and origin != self._origin:
                logger.debug("viewer RTP origin moved %d -> %d", self._origin, origin)
            self._origin = origin

    def _send_overlay(self, pts: int) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open" or self._origin is None:
            return
        entry = self._source.message_at(pts)
        if entry is None or entry[0] == self._sent_pts:
            return
        if channel.bufferedAmount > CHANNEL_BACKLOG:
            self.dropped += 1
            return
        from_pts, body = entry
        channel.send(f'{{"rtp":{(self._origin + from_pts) % RTP_MOD},"pts":{from_pts},{body[1:]}')
        self._sent_pts = from_pts
        self.sent += 1

    def stop(self) -> None:
        super().stop()
        self._inner.stop()


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


SourceKey = tuple[str, Overlays]  # camera, how its overlays are drawn


class LiveVideo:
    """Answers browser offers and owns every peer connection and camera source."""

    def __init__(self, live: LiveView, fps: float = 12.0, overlays: Overlays = DEFAULT_OVERLAYS):
        self._live = live
        self._fps = fps
        self.overlays = overlays
        self._cameras = {c.id for c in live.site.cameras}
        self._sources: dict[SourceKey, _Source] = {}
        self._peers: set[RTCPeerConnection] = set()
        self.viewer_tracks: dict[RTCPeerConnection, ViewerTrack] = {}

    @property
    def peers(self) -> int:
        return len(self._peers)

    @property
    def encoders(self) -> int:
        """Cameras being encoded now: one each (per overlay kind), however many watch it."""
        return len(self._sources)

    async def answer(
        self, camera: str, sdp: str, type_: str, overlays: Overlays | None = None
    ) -> RTCSessionDescription:
        """Accept a browser's offer for `camera`, with overlays drawn as `overlays` asks (else
        the default); raises UnknownCamera or ValueError."""
        if camera not in self._cameras:
            raise UnknownCamera(camera)
        mode: Overlays = overlays or self.overlays
        key: SourceKey = (camera, mode)
        # No ICE servers: the dashboard is served on the site's LAN and the default public
        # STUN server is unreachable there (and would only delay gathering).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._peers.add(pc)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            logger.info("camera %s: viewer connection %s", camera, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self._close(key, pc)

        try:
            source = self._source(key)
            source.viewers.add(pc)
            # Buffered: with shared encoded packets a dropped one would smear the picture until
            # the next keyframe; senders drain their queue as fast as they packetize it.
            track: MediaStreamTrack = source.relay.subscribe(source.track, buffered=True)
            viewer = None
            if mode == "browser":
                track = viewer = ViewerTrack(source.track, track)
                self.viewer_tracks[pc] = viewer

            @pc.on("datachannel")
            def _on_channel(channel: RTCDataChannel) -> None:
                if channel.label != OVERLAY_CHANNEL:
                    return
                hello = json.dumps({"overlays": mode, "camera": camera})

                def _open() -> None:
                    channel.send(hello)  # tells the page who draws the overlays
                    if viewer is not None:
                        viewer.channel = channel

                if channel.readyState == "open":
                    _open()
                else:
                    channel.on("open", _open)

            transceiver = pc.addTransceiver(track, direction="sendonly")
            if viewer is not None:
                viewer.sender = transceiver.sender
            # The packets are VP8: nothing else may be negotiated, so say so before the offer
            # is read (aiortc settles the codecs when it applies the remote description).
            vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
            transceiver.setCodecPreferences(vp8)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type_))
            source.track.request_keyframe()
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._close(key, pc)
            raise
        return pc.localDescription

    def _source(self, key: SourceKey) -> _Source:
        source = self._sources.get(key)
        if source is None:
            camera, overlays = key
            source = _Source(CameraTrack(self._live, camera, self._fps, overlays))
            self._sources[key] = source
        return source

    async def _close(self, key: SourceKey, pc: RTCPeerConnection) -> None:
        """Forget `pc`; the camera's source stops rendering when its last viewer is gone."""
        self._peers.discard(pc)
        self.viewer_tracks.pop(pc, None)
        source = self._sources.get(key)
        if source is not None:
            source.viewers.discard(pc)
            if not source.viewers:
                source.track.stop()
                del self._sources[key]
        await pc.close()

    async def close(self) -> None:
        """Close every peer connection (the browsers see the stream end) and every source."""
        peers = [(key, pc) for key, s in self._sources.items() for pc in s.viewers]
        orphans = self._peers - {pc for _, pc in peers}
        await asyncio.gather(
            *(self._close(key, pc) for key, pc in peers),
            *(pc.close() for pc in orphans),
            return_exceptions=True,
        )
        self._peers.clear()
        logger.info("live video closed (%d peer connections)", len(peers) + len(orphans))

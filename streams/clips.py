"""Evidence clips: a camera's time window copied out of its recording segments, not re-encoded.

A clip can only start on a keyframe, so it starts at the keyframe at or before the requested
start (pre-roll included) and says so; its exact first and last moments go into the MP4 tags
and a sidecar JSON together with the clip's SHA-256 and the chain hashes of the segments it
came from, so the clip can be traced back to the verified recording. Cutting holds the window,
so retention never deletes the footage a clip was made from.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from streams.recordings import Gap, RecordingStore, Segment, file_sha256
from streams.source import MediaWriter, StreamFormat, VideoSource, transcode

logger = logging.getLogger(__name__)


class ClipError(Exception):
    """A clip that cannot be cut (nothing recorded in the window); one sentence."""


@dataclass(frozen=True)
class Clip:
    """A cut clip. `start_ts`/`end_ts` are its exact first and last moments (wall clock, UTC).

    `keyframe_lead_s` is how much earlier than asked it starts (to begin on a keyframe);
    `gaps` are the recording gaps inside it (the clip jumps over them); `complete` is False
    when the camera's stream parameters changed inside the window and the clip stops there.
    """

    camera: str
    path: Path
    sidecar: Path
    from_ts: float  # the window asked for, pre- and post-roll included
    to_ts: float
    start_ts: float
    end_ts: float
    keyframe_lead_s: float
    frames: int
    sha256: str
    segments: tuple[int, ...]
    gaps: tuple[Gap, ...]
    complete: bool
    hold_id: int
    annotated: Path | None


@dataclass(frozen=True)
class _Take:
    """Which packets of one segment go into the clip: `skip` from the start, then `count`."""

    segment: Segment
    skip: int
    count: int


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cut_clip(
    store: RecordingStore,
    camera: str,
    from_ts: float,
    to_ts: float,
    out_path: str | Path,
    *,
    pre_s: float = 5.0,
    post_s: float = 5.0,
    annotated: bool = False,
) -> Clip:
    """Copy `camera`'s recording of [from_ts - pre_s, to_ts + post_s] into `out_path` (MP4).

    Writes `out_path` with a `.json` sidecar, and with `annotated` also `*-annotated.mp4`, a
    re-encoded copy with the time burned in. The window stays held in the store.
    """
    out_path = Path(out_path)
    window = (from_ts - pre_s, to_ts + post_s)
    hold_id = store.hold(f"evidence export {out_path.name}", *window, camera=camera)
    segments = store.segments(camera, *window)
    if not segments:
        store.release(hold_id)
        raise ClipError(f"no recording of camera {camera} between {iso(window[0])} and {iso(window[1])}")
    takes, start_ts, end_ts, complete = _plan(store, segments, *window)
    if not takes:
        store.release(hold_id)
        raise ClipError(f"the recording of camera {camera} has no keyframe before {iso(window[1])}")
    gaps = tuple(g for g in store.gaps(camera) if g.from_ts < end_ts and (g.to_ts or end_ts) > start_ts)
    tags = {
        "title": f"BondWatch evidence, camera {camera}, {iso(start_ts)} to {iso(end_ts)}",
        "creation_time": iso(start_ts),
        "comment": f"stream copy of recording segments {takes[0].segment.seq}-"
        f"{takes[-1].segment.seq}; starts {window[0] - start_ts:.3f} s before the requested "
        "start, at a keyframe",
        "bondwatch_camera": camera,
        "bondwatch_start": iso(start_ts),
        "bondwatch_end": iso(end_ts),
        "bondwatch_start_ts": f"{start_ts:.6f}",
        "bondwatch_end_ts": f"{end_ts:.6f}",
        "bondwatch_requested_from": iso(window[0]),
        "bondwatch_requested_to": iso(window[1]),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.part")
    frames = _copy(store, takes, start_ts, tmp, tags)
    tmp.replace(out_path)
    sha = file_sha256(out_path)
    annotated_path = None
    if annotated:
        annotated_path = out_path.with_name(f"{out_path.stem}-annotated.mp4")
        transcode(out_path, annotated_path, _stamp(camera, start_ts), metadata=tags)
    clip = Clip(
        camera=camera,
        path=out_path,
        sidecar=out_path.with_suffix(".json"),
        from_ts=window[0],
        to_ts=window[1],
        start_ts=start_ts,
        end_ts=end_ts,
        keyframe_lead_s=max(0.0, window[0] - start_ts),
        frames=frames,
        sha256=sha,
        segments=tuple(t.segment.seq for t in takes),
        gaps=gaps,
        complete=complete,
        hold_id=hold_id,
        annotated=annotated_path,
    )
    _write_sidecar(clip, takes, tags)
    logger.info(
        "camera %s: clip %s, %s to %s, %d frames", camera, out_path, iso(start_ts), iso(end_ts), frames
    )
    return clip


def _plan(
    store: RecordingStore, segments: list[Segment], win_from: float, win_to: float
) -> tuple[list[_Take], float, float, bool]:
    """First pass, packets only: from the keyframe at or before `win_from` to past `win_to`."""
    takes: list[_Take] = []
    start_ts: float | None = None
    end_ts = 0.0
    first_format: StreamFormat | None = None
    for seg in segments:
        with VideoSource(str(store.path_of(seg)), camera=seg.camera) as src:
            if first_format is None:
                first_format = src.format
            elif src.format.extradata != first_format.extradata:
                logger.warning(
                    "camera %s: stream parameters change at segment %d: the clip stops there",
                    seg.camera,
                    seg.seq,
                )
                return takes, start_ts or 0.0, end_ts, False
            skip = count = 0
            for i, p in enumerate(src.packets()):
                wall = seg.start_ts + p.t
                if wall >= win_to:
                    break
                if start_ts is None or (not takes and count and p.keyframe and wall <= win_from):
                    if not p.keyframe:
                        continue
                    start_ts, skip, count = wall, i, 0  # a later keyframe still before the start
                count += 1
                end_ts = max(end_ts, wall + p.duration)
            if count:
                takes.append(_Take(seg, skip, count))
        if end_ts >= win_to:
            break
    return takes, start_ts or 0.0, end_ts, True


def _copy(store: RecordingStore, takes: list[_Take], start_ts: float, out: Path, tags: dict[str, str]) -> int:
    """Second pass: the planned packets, on the wall-clock time line starting at 0."""
    writer: MediaWriter | None = None
    try:
        for take in takes:
            with VideoSource(str(store.path_of(take.segment)), camera=take.segment.camera) as src:
                if writer is None:
                    writer = MediaWriter(out, src.format, fragmented=False, metadata=tags)
                for i, p in enumerate(src.packets()):
                    if i >= take.skip + take.count:
                        break
                    if i >= take.skip:
                        wall = take.segment.start_ts + p.t
                        writer.write(dataclasses.replace(p, t=wall - start_ts))
    finally:
        if writer is not None:
            writer.close()
    return writer.packets if writer else 0


def _stamp(camera: str, start_ts: float) -> Callable[[np.ndarray, float], np.ndarray]:
    """A `draw` for `transcode`: the camera and the UTC time of each frame, top left."""

    def draw(image: np.ndarray, t: float) -> np.ndarray:
        text = f"{camera}  {iso(start_ts + t)}"
        for color, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):
            cv2.putText(image, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, thickness)
        return image

    return draw


def _write_sidecar(clip: Clip, takes: list[_Take], tags: dict[str, str]) -> None:
    data = {
        "camera": clip.camera,
        "file": clip.path.name,
        "sha256": clip.sha256,
        "start": iso(clip.start_ts),
        "end": iso(clip.end_ts),
        "start_ts": clip.start_ts,
        "end_ts": clip.end_ts,
        "requested_from": iso(clip.from_ts),
        "requested_to": iso(clip.to_ts),
        "keyframe_lead_s": round(clip.keyframe_lead_s, 6),
        "frames": clip.frames,
        "reencoded": False,
        "complete": clip.complete,
        "segments": [
            {"seq": t.segment.seq, "sha256": t.segment.sha256, "chain_sha256": t.segment.chain_sha256}
            for t in takes
        ],
        "gaps": [
            {"from": iso(g.from_ts), "to": iso(g.to_ts) if g.to_ts else None, "reason": g.reason}
            for g in clip.gaps
        ],
        "annotated": clip.annotated.name if clip.annotated else None,
        "tags": tags,
    }
    clip.sidecar.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

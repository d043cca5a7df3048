"""The recording store: an index of segment files, hash-chained per camera, with gaps and holds.

Every segment row carries the SHA-256 of its file and a chain hash over the previous row's chain
hash, the file hash and the row's metadata, so a segment file that is altered, deleted or
swapped, and an index row that is edited, deleted or reordered, breaks the chain at a named
place (`verify`). Rows are never deleted: retention removes the file and marks the row, which
keeps the chain checkable. A time without recording is a row of `recording_gaps`, open
(`to_ts` NULL) while the camera is away. Holds (an open alert, an evidence export) protect their
window from retention.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

from sqlalchemy import Float, Integer, String, UniqueConstraint, func, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bondwatch.db import database_url, make_engine, migrate
from bondwatch.leases import FenceCheck, WriteToken

logger = logging.getLogger(__name__)

GENESIS = "0" * 64  # the prev_sha256 of a camera's first segment
RECORDINGS_SUBDIR = "recordings"  # under the data directory
SEGMENT_SUFFIX = ".mp4"
NOT_RUNNING = "not recording (the service was stopped or crashed)"  # a hole nobody reported


class Base(DeclarativeBase):
    pass


class SegmentRow(Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("camera", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    start_ts: Mapped[float] = mapped_column(Float, index=True)
    end_ts: Mapped[float] = mapped_column(Float, index=True)
    start_t: Mapped[float] = mapped_column(Float)
    end_t: Mapped[float] = mapped_column(Float)
    path: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    prev_sha256: Mapped[str] = mapped_column(String(64))
    chain_sha256: Mapped[str] = mapped_column(String(64))
    removed_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    removed_reason: Mapped[str] = mapped_column(String(200), default="")


class SegmentWriterRow(Base):
    """Which worker wrote a segment, with its fencing token (only when a fence is in use)."""

    __tablename__ = "segment_writers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(128))
    token: Mapped[int] = mapped_column(Integer)


class GapRow(Base):
    __tablename__ = "recording_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    from_ts: Mapped[float] = mapped_column(Float, index=True)
    to_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(String(400))


class HoldRow(Base):
    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(String(400))
    camera: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: all cameras
    from_ts: Mapped[float] = mapped_column(Float)
    to_ts: Mapped[float] = mapped_column(Float)
    created_ts: Mapped[float] = mapped_column(Float)
    released_ts: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass(frozen=True)
class NewSegment:
    """A closed segment file as the recorder hands it over, before it is hashed and chained."""

    camera: str
    path: Path  # absolute, where the file lies now
    start_ts: float  # wall clock (UNIX s, UTC) of its first packet
    start_t: float  # video time of its first packet
    end_t: float  # video time at the end of its last packet
    frames: int


@dataclass(frozen=True)
class Segment:
    """One indexed segment. `path` is relative to the store's root; `removed` by retention."""

    camera: str
    seq: int
    start_ts: float
    end_ts: float
    start_t: float
    end_t: float
    path: str
    size: int
    frames: int
    sha256: str
    prev_sha256: str
    chain_sha256: str
    removed: bool

    @staticmethod
    def of(row: SegmentRow) -> Segment:
        return Segment(
            camera=row.camera,
            seq=row.seq,
            start_ts=row.start_ts,
            end_ts=row.end_ts,
            start_t=row.start_t,
            end_t=row.end_t,
            path=row.path,
            size=row.size,
            frames=row.frames,
            sha256=row.sha256,
            prev_sha256=row.prev_sha256,
            chain_sha256=row.chain_sha256,
            removed=row.removed_ts is not None,
        )


@dataclass(frozen=True)
class Gap:
    """A time a camera was not recorded; `to_ts` None while it still lasts."""

    camera: str
    from_ts: float
    to_ts: float | None
    reason: str


@dataclass(frozen=True)
class Problem:
    """One finding of `verify`, naming the segment (seq and file) and what is wrong."""

    camera: str
    seq: int | None
    path: str
    what: str

    def __str__(self) -> str:
        where = f"segment {self.seq} ({self.path})" if self.seq is not None else self.path
        return f"camera {self.camera}: {where}: {self.what}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def chain_hash(prev: str, sha256: str, meta: dict[str, object]) -> str:
    """sha256(prev chain || segment sha256 || canonical metadata), all as hex/JSON text."""
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev}|{sha256}|{text}".encode()).hexdigest()


def _meta(row: SegmentRow) -> dict[str, object]:
    """The row's fields the chain covers; floats fixed to microseconds so any database agrees."""
    return {
        "camera": row.camera,
        "seq": row.seq,
        "start_ts": f"{row.start_ts:.6f}",
        "end_ts": f"{row.end_ts:.6f}",
        "start_t": f"{row.start_t:.6f}",
        "end_t": f"{row.end_t:.6f}",
        "path": row.path,
        "size": row.size,
        "frames": row.frames,
    }


class RecordingStore:
    """Segment files under `root` and their index in the database at `url`.

    Thread-safe: every camera's recorder adds to it from its own thread. `max_age_s` and
    `quota_bytes` (None: unlimited) are applied after each added segment, oldest first, and
    never to a segment inside an active hold. A reported outage is a gap however short; a hole
    between two segments longer than `gap_tolerance_s` is one even when nobody reported it
    (a crash).

    With a `fence` (workers sharing cameras through leases, see `bondwatch.leases`), a segment
    or an outage is written only while the fence names this writer's token for the camera, and
    never with a token older than one already stored for it: a worker that lost a camera
    cannot write for it, even one that wakes from a pause before it noticed.
    """

    def __init__(
        self,
        url: str,
        root: str | Path,
        *,
        max_age_s: float | None = None,
        quota_bytes: int | None = None,
        gap_tolerance_s: float = 1.0,
        fence: FenceCheck | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        migrate(url)
        self.engine = make_engine(url)
        self.max_age_s = max_age_s
        self.quota_bytes = quota_bytes
        self.gap_tolerance_s = gap_tolerance_s
        self.fence = fence
        self._lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------

    def add_segment(self, new: NewSegment, final_path: Path) -> Segment | None:
        """Hash `new.path`, chain it after the camera's last segment, then move it to `final_path`.

        The row is written before the rename, so a crash in between leaves a named missing
        file rather than an unindexed one. Closes the camera's open gap, or records the hole
        since its last segment as a gap when nobody reported one. None, and the file deleted,
        when the fence refuses this writer.
        """
        writer = self._writer(new.camera)
        if writer is False:
            new.path.unlink(missing_ok=True)
            return None
        sha = file_sha256(new.path)
        size = new.path.stat().st_size
        rel = final_path.relative_to(self.root).as_posix()
        end_ts = new.start_ts + max(0.0, new.end_t - new.start_t)
        with self._lock, Session(self.engine) as s, s.begin():
            last = s.scalars(
                select(SegmentRow)
                .where(SegmentRow.camera == new.camera)
                .order_by(SegmentRow.seq.desc())
                .limit(1)
            ).first()
            if writer is not None and not _fenced_in(s, new.camera, writer):
                new.path.unlink(missing_ok=True)
                return None
            row = SegmentRow(
                camera=new.camera,
                seq=last.seq + 1 if last else 1,
                start_ts=new.start_ts,
                end_ts=end_ts,
                start_t=new.start_t,
                end_t=new.end_t,
                path=rel,
                size=size,
                frames=new.frames,
                sha256=sha,
                prev_sha256=last.chain_sha256 if last else GENESIS,
                removed_reason="",
            )
            row.chain_sha256 = chain_hash(row.prev_sha256, sha, _meta(row))
            s.add(row)
            if writer is not None:
                s.add(
                    SegmentWriterRow(camera=new.camera, seq=row.seq, owner=writer.owner, token=writer.token)
                )
            self._close_gap(s, new.camera, new.start_ts, last.end_ts if last else None)
            segment = Segment.of(row)
        new.path.replace(final_path)
        logger.debug("camera %s: indexed segment %d (%s)", new.camera, segment.seq, rel)
        if self.max_age_s is not None or self.quota_bytes is not None:
            self.enforce_retention()
        return segment

    def _close_gap(self, s: Session, camera: str, start_ts: float, last_end: float | None) -> None:
        gap = s.scalars(select(GapRow).where(GapRow.camera == camera, GapRow.to_ts.is_(None))).first()
        if gap is not None:  # a reported outage stays on record, however short
            gap.to_ts = max(start_ts, gap.from_ts)
            logger.info("camera %s: recording resumed after %.1f s", camera, start_ts - gap.from_ts)
        elif last_end is not None and start_ts - last_end > self.gap_tolerance_s:
            s.add(
                GapRow(
                    camera=camera,
                    from_ts=last_end,
                    to_ts=start_ts,
                    reason=NOT_RUNNING,
                )
            )

    def note_outage(self, camera: str, reason: str) -> None:
        """Open a gap from the camera's last recorded moment: it stops recording, for `reason`.

        A camera already in an open gap keeps it (and its first reason). A camera that never
        recorded has nothing to continue, so nothing is written; nor is anything when the fence
        refuses this writer.
        """
        writer = self._writer(camera)
        if writer is False:
            return
        with self._lock, Session(self.engine) as s, s.begin():
            if writer is not None and not _fenced_in(s, camera, writer):
                return
            if s.scalars(select(GapRow.id).where(GapRow.camera == camera, GapRow.to_ts.is_(None))).first():
                return
            last_end = s.scalars(
                select(SegmentRow.end_ts)
                .where(SegmentRow.camera == camera)
                .order_by(SegmentRow.seq.desc())
                .limit(1)
            ).first()
            if last_end is None:
                return
            s.add(GapRow(camera=camera, from_ts=last_end, reason=reason))
        logger.info("camera %s: recording interrupted: %s", camera, reason)

    def _writer(self, camera: str) -> WriteToken | Literal[False] | None:
        """This writer's token for `camera`; None without a fence; False when it is refused."""
        if self.fence is None:
            return None
        writer = self.fence(camera)
        if writer is None:
            logger.warning("camera %s: not written: this worker no longer owns the camera", camera)
            return False
        return writer

    def writers(self, camera: str | None = None) -> list[tuple[str, int, str, int]]:
        """(camera, seq, owner, token) of every fenced segment, in recording order."""
        q = select(SegmentWriterRow).order_by(SegmentWriterRow.camera, SegmentWriterRow.seq)
        if camera is not None:
            q = q.where(SegmentWriterRow.camera == camera)
        with Session(self.engine) as s:
            return [(r.camera, r.seq, r.owner, r.token) for r in s.scalars(q)]

    def hold(self, reason: str, from_ts: float, to_ts: float, camera: str | None = None) -> int:
        """Keep every segment overlapping [from_ts, to_ts] (of `camera`, or of all) until released."""
        with self._lock, Session(self.engine) as s, s.begin():
            row = HoldRow(reason=reason, camera=camera, from_ts=from_ts, to_ts=to_ts, created_ts=time.time())
            s.add(row)
            s.flush()
            return row.id

    def release(self, hold_id: int) -> None:
        with self._lock, Session(self.engine) as s, s.begin():
            row = s.get(HoldRow, hold_id)
            if row is not None and row.released_ts is None:
                row.released_ts = time.time()

    def enforce_retention(self, now: float | None = None) -> list[Segment]:
        """Delete the files of segments older than `max_age_s`, then oldest first while over quota.

        Held segments are skipped, so the store may stay over quota while holds need the space;
        that is logged. Returns the removed segments.
        """
        now = time.time() if now is None else now
        removed: list[Segment] = []
        with self._lock, Session(self.engine) as s, s.begin():
            holds = s.scalars(select(HoldRow).where(HoldRow.released_ts.is_(None))).all()
            rows = s.scalars(
                select(SegmentRow)
                .where(SegmentRow.removed_ts.is_(None))
                .order_by(SegmentRow.start_ts, SegmentRow.id)
            ).all()
            total = sum(r.size for r in rows)
            for row in rows:
                if any(_overlaps(h, row) for h in holds):
                    continue
                if self.max_age_s is not None and row.end_ts < now - self.max_age_s:
                    reason = "retention: older than the maximum age"
                elif self.quota_bytes is not None and total > self.quota_bytes:
                    reason = "retention: disk quota"
                else:
                    continue
                (self.root / row.path).unlink(missing_ok=True)
                row.removed_ts = now
                row.removed_reason = reason
                total -= row.size
                removed.append(Segment.of(row))
        if self.quota_bytes is not None and total > self.quota_bytes:
            logger.warning(
                "recordings use %d bytes, over the quota of %d: the rest is held",
                total,
                self.quota_bytes,
            )
        for seg in removed:
            logger.info("camera %s: removed segment %d (%s)", seg.camera, seg.seq, seg.path)
        return removed

    # -- reading ---------------------------------------------------------------------------

    def segments(
        self,
        camera: str | None = None,
        from_ts: float | None = None,
        to_ts: float | None = None,
        *,
        include_removed: bool = False,
    ) -> list[Segment]:
        """Segments (of `camera`) overlapping [from_ts, to_ts], in recording order."""
        q = select(SegmentRow).order_by(SegmentRow.camera, SegmentRow.seq)
        if camera is not None:
            q = q.where(SegmentRow.camera == camera)
        if from_ts is not None:
            q = q.where(SegmentRow.end_ts > from_ts)
        if to_ts is not None:
            q = q.where(SegmentRow.start_ts < to_ts)
        if not include_removed:
            q = q.where(SegmentRow.removed_ts.is_(None))
        with Session(self.engine) as s:
            return [Segment.of(r) for r in s.scalars(q)]

    def gaps(self, camera: str | None = None) -> list[Gap]:
        q = select(GapRow).order_by(GapRow.from_ts)
        if camera is not None:
            q = q.where(GapRow.camera == camera)
        with Session(self.engine) as s:
            return [Gap(g.camera, g.from_ts, g.to_ts, g.reason) for g in s.scalars(q)]

    def held(self, camera: str, from_ts: float, to_ts: float) -> bool:
        with Session(self.engine) as s:
            q = select(HoldRow.id).where(
                HoldRow.released_ts.is_(None),
                or_(HoldRow.camera.is_(None), HoldRow.camera == camera),
                HoldRow.from_ts < to_ts,
                HoldRow.to_ts > from_ts,
            )
            return s.scalars(q).first() is not None

    def path_of(self, segment: Segment) -> Path:
        return self.root / segment.path

    def cameras(self) -> list[str]:
        with Session(self.engine) as s:
            return list(s.scalars(select(SegmentRow.camera).distinct().order_by(SegmentRow.camera)))

    # -- verification ----------------------------------------------------------------------

    def verify(self, camera: str | None = None) -> list[Problem]:
        """Walk each camera's chain and check every file still present; [] when all is intact."""
        problems: list[Problem] = []
        cameras = [camera] if camera is not None else self.cameras()
        for cam in cameras:
            with Session(self.engine) as s:
                rows = list(
                    s.scalars(select(SegmentRow).where(SegmentRow.camera == cam).order_by(SegmentRow.seq))
                )
            problems += self._verify_chain(cam, rows)
            problems += self._unindexed_files(cam, {r.path for r in rows})
        return problems

    def _verify_chain(self, camera: str, rows: list[SegmentRow]) -> list[Problem]:
        problems: list[Problem] = []
        prev, expected_seq = GENESIS, 1
        for row in rows:
            if row.seq != expected_seq:
                missing = (
                    f"segment {expected_seq}"
                    if row.seq == expected_seq + 1
                    else f"segments {expected_seq}-{row.seq - 1}"
                )
                problems.append(Problem(camera, row.seq, row.path, f"{missing} missing from the index"))
            elif row.prev_sha256 != prev:
                problems.append(
                    Problem(
                        camera,
                        row.seq,
                        row.path,
                        "does not follow the previous segment (an index row was replaced or reordered)",
                    )  # fmt: skip
                )
            if chain_hash(row.prev_sha256, row.sha256, _meta(row)) != row.chain_sha256:
                problems.append(Problem(camera, row.seq, row.path, "index entry altered"))
            if row.removed_ts is None:
                path = self.root / row.path
                if not path.is_file():
                    problems.append(Problem(camera, row.seq, row.path, "file missing"))
                elif file_sha256(path) != row.sha256:
                    problems.append(Problem(camera, row.seq, row.path, "file altered (SHA-256 differs)"))
            prev, expected_seq = row.chain_sha256, row.seq + 1
        return problems

    def _unindexed_files(self, camera: str, indexed: set[str]) -> list[Problem]:
        """Finished segment files the index does not know: copied in, or renamed."""
        folder = self.root / camera
        if not folder.is_dir():
            return []
        return [
            Problem(camera, None, rel, "file not in the index (added or renamed)")
            for p in sorted(folder.rglob(f"*{SEGMENT_SUFFIX}"))
            if (rel := p.relative_to(self.root).as_posix()) not in indexed
        ]


def _fenced_in(s: Session, camera: str, writer: WriteToken) -> bool:
    """Whether `writer` may write for `camera`: no newer token has written for it yet."""
    newest = s.scalar(select(func.max(SegmentWriterRow.token)).where(SegmentWriterRow.camera == camera))
    if newest is not None and writer.token < newest:
        logger.warning(
            "camera %s: not written: token %d of %s is older than token %d",
            camera, writer.token, writer.owner, newest,
        )  # fmt: skip
        return False
    return True


def _overlaps(hold: HoldRow, row: SegmentRow) -> bool:
    return (
        (hold.camera is None or hold.camera == row.camera)
        and hold.from_ts < row.end_ts
        and hold.to_ts > row.start_ts
    )


def open_store(
    data_dir: str | Path,
    *,
    max_age_s: float | None = None,
    quota_bytes: int | None = None,
    fence: FenceCheck | None = None,
) -> RecordingStore:
    """The store the service uses: DATABASE_URL or SQLite under `data_dir`, files in recordings/."""
    data_dir = Path(data_dir)
    return RecordingStore(
        database_url(data_dir),
        data_dir / RECORDINGS_SUBDIR,
        max_age_s=max_age_s,
        quota_bytes=quota_bytes,
        fence=fence,
    )


def verify_recordings(data_dir: str | Path, camera: str | None = None, out: TextIO = sys.stdout) -> int:
    """`bondwatch verify-recordings`: print each problem on one line; 0 when intact, else 2."""
    store = open_store(data_dir)
    if camera is not None and camera not in store.cameras():
        print(f"no recordings of camera {camera} in {store.root}", file=out)
        return 2
    problems = store.verify(camera)
    for problem in problems:
        print(problem, file=out)
    segments = store.segments(camera, include_removed=True)
    checked = sum(not s.removed for s in segments)
    cams = len({s.camera for s in segments})
    if problems:
        print(f"{len(problems)} problem(s) in {len(segments)} segments of {cams} camera(s)", file=out)
        return 2
    print(f"ok: {len(segments)} segments of {cams} camera(s) chained, {checked} files intact", file=out)
    for gap in store.gaps(camera):  # not a problem of integrity, but a loss of supervision
        until = _utc(gap.to_ts) if gap.to_ts is not None else "now"
        print(f"gap: camera {gap.camera} not recorded {_utc(gap.from_ts)} to {until}: {gap.reason}", file=out)
    return 0


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")

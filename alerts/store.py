"""Alert storage: every alert is written here before it is published anywhere else."""

from __future__ import annotations

import logging
import time

from sqlalchemy import Float, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from alerts.types import Alert
from bondwatch.db import make_engine

logger = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    t: Mapped[float] = mapped_column(Float)
    ts: Mapped[float | None] = mapped_column(Float, index=True)
    zone: Mapped[str | None] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))
    track: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text, default="")
    stored_at: Mapped[float] = mapped_column(Float, index=True)

    def to_alert(self) -> Alert:
        return Alert(
            id=self.id,
            type=self.type,  # type: ignore[arg-type]
            camera=self.camera,
            t=self.t,
            ts=self.ts,
            zone=self.zone,
            station=self.station,
            track=self.track,
            confidence=self.confidence,
            explanation=self.explanation,
        )


class AlertStore:
    def __init__(self, url: str):
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)

    def add(self, alert: Alert) -> None:
        """Store `alert` once; storing the same id again is a no-op."""
        with Session(self.engine) as s, s.begin():
            if s.get(AlertRow, alert.id) is None:
                s.add(
                    AlertRow(
                        id=alert.id,
                        type=alert.type,
                        camera=alert.camera,
                        t=alert.t,
                        ts=alert.ts,
                        zone=alert.zone,
                        station=alert.station,
                        track=alert.track,
                        confidence=alert.confidence,
                        explanation=alert.explanation,
                        stored_at=time.time(),
                    )
                )

    def recent(self, limit: int = 200, since: float | None = None) -> list[Alert]:
        """Newest first; `since` is a wall-clock UNIX time."""
        q = select(AlertRow).order_by(AlertRow.stored_at.desc()).limit(limit)
        if since is not None:
            q = q.where(AlertRow.stored_at >= since)
        with Session(self.engine) as s:
            return [r.to_alert() for r in s.scalars(q)]

    def close(self) -> None:
        self.engine.dispose()

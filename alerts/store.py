"""Alert storage: every alert is written here before it is published anywhere else.

Next to each alert sits its case row (group, lifecycle state) and, per case, its history.
Every lifecycle change is written in one transaction with its audit-trail entry.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import cast

from sqlalchemy import Float, Integer, String, Text, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from alerts.cases import GROUP_WINDOW_S, Action, Case, Resolution, Role, State, Step, decide
from alerts.types import Alert
from bondwatch.audit import AuditLog
from bondwatch.db import make_engine, migrate

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
    carrier: Mapped[int | None] = mapped_column(Integer)
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
            carrier=self.carrier,
            confidence=self.confidence,
            explanation=self.explanation,
        )


class CaseRow(Base):
    """One per alert: its group (the head's id) and the state of that group's case, copied to
    every member so a list of alerts shows each one's state without a second lookup."""

    __tablename__ = "alert_cases"

    alert_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    resolution: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[float] = mapped_column(Float)


class HistoryRow(Base):
    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str | None] = mapped_column(String(32))

    def to_step(self) -> Step:
        state = cast(State, self.state)
        return Step(
            self.action, self.actor, self.at, state, self.note, cast(Resolution | None, self.resolution)
        )


class UnknownAlert(LookupError):
    pass


SYSTEM_ACTOR = "bondwatch"


class AlertStore:
    def __init__(self, url: str):
        migrate(url)
        self.engine = make_engine(url)
        self.audit = AuditLog(self.engine)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction for alert, case, outbox and audit rows alike (see AuditLog)."""
        with self.audit.transaction() as s:
            yield s

    def add(self, alert: Alert) -> bool:
        """Store `alert` once; storing the same id again is a no-op (returns False)."""
        with self.transaction() as s:
            return self.insert(s, alert)

    def insert(self, s: Session, alert: Alert) -> bool:
        """`add` inside the caller's transaction `s`, so other rows can commit with the alert."""
        if s.get(AlertRow, alert.id) is not None:
            return False
        now = time.time()
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
                carrier=alert.carrier,
                confidence=alert.confidence,
                explanation=alert.explanation,
                stored_at=now,
            )
        )
        head = self._open_case_of(s, alert, alert.ts if alert.ts is not None else now)
        if head is None:
            s.add(CaseRow(alert_id=alert.id, group_id=alert.id, state="new", updated_at=now))
            s.add(HistoryRow(case_id=alert.id, action="raised", actor=SYSTEM_ACTOR, at=now, state="new"))
        else:
            s.add(
                CaseRow(
                    alert_id=alert.id, group_id=head.group_id, state=head.state,
                    resolution=head.resolution, updated_at=now,
                )
            )  # fmt: skip
            s.add(
                HistoryRow(
                    case_id=head.group_id, action="grouped", actor=SYSTEM_ACTOR, at=now,
                    state=head.state, note=f"alert {alert.id} joined this case",
                )
            )  # fmt: skip
        return True

    def _open_case_of(self, s: Session, alert: Alert, when: float) -> CaseRow | None:
        """The case row of the newest alert that `alert` repeats within the grouping window."""
        event_time = func.coalesce(AlertRow.ts, AlertRow.stored_at)
        q = (
            select(CaseRow)
            .join(AlertRow, AlertRow.id == CaseRow.alert_id)
            .where(
                AlertRow.id != alert.id,
                AlertRow.type == alert.type,
                AlertRow.camera == alert.camera,
                AlertRow.zone.is_not_distinct_from(alert.zone),
                AlertRow.track.is_not_distinct_from(alert.track),
                CaseRow.state != "resolved",
                event_time >= when - GROUP_WINDOW_S,
                event_time <= when + GROUP_WINDOW_S,
            )
            .order_by(event_time.desc())
            .limit(1)
        )
        return s.scalars(q).first()

    def act(
        self,
        alert_id: str,
        action: Action,
        actor: str,
        role: Role,
        *,
        text: str = "",
        resolution: str | None = None,
    ) -> Case:
        """Apply a lifecycle action to the case `alert_id` belongs to, with its history row and
        audit entry; raises UnknownAlert, or a CaseError saying why the action is refused."""
        with self.transaction() as s:
            row = s.get(CaseRow, alert_id)
            if row is None:
                raise UnknownAlert(alert_id)
            head = s.get(CaseRow, row.group_id) or row
            before = head.state
            state, res = decide(
                head.alert_id, cast(State, before), action, role, text=text, resolution=resolution
            )
            now = time.time()
            if action != "note":
                s.execute(
                    update(CaseRow)
                    .where(CaseRow.group_id == head.group_id)
                    .values(state=state, resolution=res, updated_at=now)
                )
            s.add(
                HistoryRow(
                    case_id=head.group_id, action=action, actor=actor, at=now, state=state,
                    note=text.strip(), resolution=res,
                )
            )  # fmt: skip
            detail = {"role": role, "from": before, "to": state, "text": text.strip()}
            if res is not None:
                detail["resolution"] = res
            self.audit.append(s, actor, f"case_{action}", f"alert:{head.group_id}", detail)
            case_id = head.group_id
        return self.case(case_id)  # type: ignore[return-value]

    def case(self, alert_id: str) -> Case | None:
        """The case `alert_id` belongs to (its group head, members and history)."""
        with Session(self.engine) as s:
            row = s.get(CaseRow, alert_id)
            if row is None:
                return None
            head = s.get(CaseRow, row.group_id) or row
            alerts = s.scalars(
                select(AlertRow)
                .join(CaseRow, CaseRow.alert_id == AlertRow.id)
                .where(CaseRow.group_id == head.group_id)
                .order_by(func.coalesce(AlertRow.ts, AlertRow.stored_at), AlertRow.stored_at)
            ).all()
            history = s.scalars(
                select(HistoryRow).where(HistoryRow.case_id == head.group_id).order_by(HistoryRow.id)
            ).all()
            first = next(a for a in alerts if a.id == head.group_id)
            return Case(
                alert=first.to_alert(),
                state=cast(State, head.state),
                resolution=cast(Resolution | None, head.resolution),
                members=tuple(a.to_alert() for a in alerts if a.id != head.group_id),
                history=tuple(h.to_step() for h in history),
            )

    def offline_cameras(self) -> set[str]:
        """Cameras whose newest health alert is `camera_offline`: dark when the service last
        looked, so their return must be reported even by a service started since."""
        event_time = func.coalesce(AlertRow.ts, AlertRow.stored_at)
        q = (
            select(AlertRow.camera, AlertRow.type)
            .where(AlertRow.type.in_(("camera_offline", "camera_online")))
            .order_by(event_time)
        )
        with Session(self.engine) as s:
            last = {camera: kind for camera, kind in s.execute(q)}
        return {camera for camera, kind in last.items() if kind == "camera_offline"}

    def states(self, alert_ids: list[str]) -> dict[str, tuple[str, str]]:
        """alert id -> (case state, group id) for those of `alert_ids` that have a case row."""
        with Session(self.engine) as s:
            rows = s.scalars(select(CaseRow).where(CaseRow.alert_id.in_(alert_ids)))
            return {r.alert_id: (r.state, r.group_id) for r in rows}

    def recent(
        self,
        limit: int = 200,
        since: float | None = None,
        *,
        types: Sequence[str] = (),
        camera: str | None = None,
        station: str | None = None,
        state: str | None = None,
        from_ts: float | None = None,
        to_ts: float | None = None,
    ) -> list[Alert]:
        """Newest first; `since` is a wall-clock UNIX time of storing. The filters narrow the
        list on the server, so a desk looking at last week is not limited to the newest `limit`:
        `from_ts`/`to_ts` bound the event's own time (its `ts`, or when it was stored)."""
        q = select(AlertRow).order_by(AlertRow.stored_at.desc()).limit(limit)
        if since is not None:
            q = q.where(AlertRow.stored_at >= since)
        if types:
            q = q.where(AlertRow.type.in_(types))
        if camera is not None:
            q = q.where(AlertRow.camera == camera)
        if station is not None:
            q = q.where(AlertRow.station == station)
        if state is not None:
            q = q.join(CaseRow, CaseRow.alert_id == AlertRow.id).where(CaseRow.state == state)
        event_time = func.coalesce(AlertRow.ts, AlertRow.stored_at)
        if from_ts is not None:
            q = q.where(event_time >= from_ts)
        if to_ts is not None:
            q = q.where(event_time <= to_ts)
        with Session(self.engine) as s:
            return [r.to_alert() for r in s.scalars(q)]

    def close(self) -> None:
        self.engine.dispose()

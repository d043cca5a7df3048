"""Retention on SQLite and PostgreSQL: old resolved cases go with every row, evidence folder and
recording hold of theirs; open cases stay; the audit chain still verifies after its oldest
entries are purged, and a purge nobody recorded is caught. Time is a `now` argument."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import wait_for
from sqlalchemy import MetaData, select

from alerts.outbox import Outbox
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.cli import main as cli
from bondwatch.db import make_engine
from bondwatch.retention import DAY_S, Retention, RetentionWorker
from bondwatch.site import RetentionSettings, SiteError, parse_site
from streams.recordings import RecordingStore

SETTINGS = RetentionSettings(days=1096)
PERIOD_S = 1096 * DAY_S


def make_alert(ts: float, track: int, **kw: object) -> Alert:
    fields: dict[str, object] = {
        "type": "unauthorized_entry", "camera": "pets", "zone": "lawn", "track": track, "t": 1.0,
        "ts": ts,
    }  # fmt: skip
    return Alert(**(fields | kw))  # type: ignore[arg-type]


def resolve(store: AlertStore, alert_id: str) -> None:
    store.act(alert_id, "acknowledge", "li", "officer")
    store.act(alert_id, "resolve", "li", "officer", text="checked", resolution="false_alarm")


def alert_keyed_ids(db_url: str) -> dict[str, set[str]]:
    """table -> the alert ids its rows name, for every table with an `alert_id` column."""
    engine = make_engine(db_url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as conn:
            return {
                t.name: set(conn.scalars(select(t.c.alert_id)))
                for t in tables.sorted_tables
                if "alert_id" in t.c
            }
    finally:
        engine.dispose()


def evidence_folder(data: Path, name: str, mtime: float | None = None) -> Path:
    folder = data / "evidence" / name
    folder.mkdir(parents=True)
    (folder / "snapshot.jpg").write_bytes(b"jpeg")
    if mtime is not None:
        os.utime(folder / "snapshot.jpg", (mtime, mtime))
    return folder


def test_old_resolved_cases_go_and_open_ones_stay(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    data = tmp_path / "data"
    store = AlertStore(db_url)
    outbox = Outbox(store)
    recording = RecordingStore(db_url, data / "recordings")
    for i in range(4):  # sign-ins before the cutoff (set from the fourth below)
        store.audit.record(f"user{i}", "login", f"user:user{i}")
    cutoff = store.audit.entries()[3].ts
    now = cutoff + PERIOD_S
    old, recent = cutoff - 10 * DAY_S, cutoff + 10 * DAY_S
    gone = [make_alert(old, 1), make_alert(old + 5, 1)]  # one case of two alerts, resolved
    still_open = make_alert(old, 2)
    young = make_alert(recent, 3)
    straddling = [
        make_alert(cutoff - 30, 4),
        make_alert(cutoff + 20, 4),
    ]  # a case across the cutoff
    for a in [*gone, still_open, young, *straddling]:
        outbox.emit(a)
        recording.hold(f"alert {a.id}", a.ts - 30, a.ts + 30, camera=a.camera)  # type: ignore[operator]
    for a in (gone[0], young, straddling[0]):
        resolve(store, a.id)
    store.act(still_open.id, "acknowledge", "li", "officer")
    assert store.case(gone[1].id).id == gone[0].id  # type: ignore[union-attr]
    evidence_folder(data, gone[0].id)  # written recently: goes with its alert all the same
    evidence_folder(data, still_open.id, mtime=old)
    evidence_folder(data, "0" * 32, mtime=old)  # of an alert no longer stored: a leftover
    evidence_folder(data, "f" * 32)  # no alert, but new: maybe being written, stays
    entries_before = len(store.audit.entries())
    assert recording.held("pets", old + 32, old + 33)

    retention = Retention(db_url, data, SETTINGS)
    report = retention.run(now=now)

    assert (report.alerts, report.kept_open, report.evidence, report.holds_released) == (2, 1, 2, 2)
    assert report.rows["alert_cases"] == 2 and report.rows["alert_outbox"] == 2
    assert report.rows["alert_history"] == 4  # raised, grouped, acknowledge, resolve: one case
    assert report.audit == 3
    for a in gone:
        assert store.case(a.id) is None
    kept = {still_open.id, young.id, *(a.id for a in straddling)}
    assert {a.id for a in store.recent(limit=100)} == kept
    assert store.case(still_open.id).state == "acknowledged"  # type: ignore[union-attr]
    assert [m.id for m in store.case(straddling[1].id).members] == [straddling[1].id]  # type: ignore[union-attr]
    for table, ids in alert_keyed_ids(db_url).items():
        assert not ids & {a.id for a in gone}, f"{table} still names a purged alert"
    assert sorted(p.name for p in (data / "evidence").iterdir()) == sorted(
        [still_open.id, "f" * 32]
    )
    assert not recording.held("pets", old + 32, old + 33)  # only gone[1]'s hold covered this
    assert recording.held("pets", old - 29, old - 28)  # still_open's hold stays

    entries = store.audit.entries()
    assert entries[0].seq == 4  # 1-3 are older than the cutoff; the fourth is at it and stays
    assert [e.action for e in entries[-2:]] == ["retention_purged", "audit_purged"]
    assert entries[-1].detail["through_seq"] == 3 and entries[-1].detail["entries"] == 3
    assert len(entries) == entries_before - 3 + 2
    assert store.audit.verify() == (len(entries), None)
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert cli(["audit", "verify", "--data", str(data)]) == 0
    assert f"audit trail intact: {len(entries)} entries" in capsys.readouterr().out

    again = retention.run(now=now)  # nothing left to do, and nothing recorded for it
    assert (again.alerts, again.audit, again.evidence) == (0, 0, 0)
    assert len(store.audit.entries()) == len(entries)
    store.audit.record("li", "login", "user:li")  # the chain goes on after a purge
    assert store.audit.verify() == (len(entries) + 1, None)
    retention.close()
    store.close()


def purged_log(db_url: str, data: Path) -> AlertStore:
    """Six sign-ins; retention with a cutoff at the fourth purges entries 1-3."""
    store = AlertStore(db_url)
    for i in range(6):
        store.audit.record(f"user{i}", "login", f"user:user{i}")
    retention = Retention(db_url, data, SETTINGS)
    assert retention.run(now=store.audit.entries()[3].ts + PERIOD_S).audit == 3
    retention.close()
    return store


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        ((), None),
        (("DELETE FROM audit_log WHERE seq = 4",), "entry 4 removed"),
        (("UPDATE audit_anchor SET hash = (SELECT hash FROM audit_log WHERE seq = 5)",),
         "entry 4 changed: it does not continue from purged entry 3"),
        # Deleting the oldest kept entries and moving the anchor by hand: no purge says so.
        (("UPDATE audit_anchor SET seq = 5, hash = (SELECT hash FROM audit_log WHERE seq = 5)",
          "DELETE FROM audit_log WHERE seq <= 5"),
         "entries 1-5 removed: no recorded purge vouches for the chain's anchor"),
        (("DELETE FROM audit_anchor",), "entries 1-3 removed"),
    ],
)  # fmt: skip
def test_audit_verify_after_a_purge(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, statements, message
):
    store = purged_log(db_url, tmp_path)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", db_url)
    code = cli(["audit", "verify", "--data", str(tmp_path)])
    out = capsys.readouterr()
    if message is None:
        assert code == 0 and "audit trail intact: 4 entries" in out.out  # 4-6 and the purge
    else:
        assert code == 2 and message in out.err, out.err
    store.close()


def test_a_log_purged_whole_goes_on_from_its_anchor(db_url: str, tmp_path: Path):
    store = AlertStore(db_url)
    for i in range(3):
        store.audit.record(f"user{i}", "login", f"user:user{i}")
    retention = Retention(db_url, tmp_path, SETTINGS)
    assert retention.run(now=store.audit.entries()[-1].ts + PERIOD_S + 1).audit == 3
    store.audit.record("li", "login", "user:li")
    assert [(e.seq, e.action) for e in store.audit.entries()] == [(4, "audit_purged"), (5, "login")]
    assert store.audit.verify() == (2, None)
    retention.close()
    store.close()


@pytest.mark.parametrize(
    ("section", "days"),
    [("", 1096.0), ("retention: {days: 30}\n", 30.0), ("retention: {days: 0}\n", SiteError),
     ("retention: {weeks: 3}\n", SiteError)],
)  # fmt: skip
def test_site_retention_section(tmp_path: Path, section: str, days: object):
    text = "cameras:\n  - id: pets\n    url: rtsp://127.0.0.1:8554/pets\n" + section
    if days is SiteError:
        with pytest.raises(SiteError, match="retention"):
            parse_site(text)
    else:
        assert parse_site(text).retention.days == days


def test_retention_command_and_worker(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    store = AlertStore(db_url)
    outbox = Outbox(store)
    ancient = make_alert(1_000_000_000.0, 1)  # 2001: long past any retention period
    outbox.emit(ancient)
    resolve(store, ancient.id)
    site = tmp_path / "site.yaml"
    site.write_text(
        "cameras:\n  - id: pets\n    url: rtsp://127.0.0.1:8554/pets\nretention: {days: 30}\n"
    )
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert cli(["retention", "run", "--site", str(site), "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("retention: before ") and ": 1 alerts (" in out, out
    assert store.case(ancient.id) is None

    second = make_alert(1_000_000_000.0, 2)
    outbox.emit(second)
    resolve(store, second.id)
    worker = RetentionWorker(Retention(db_url, tmp_path, RetentionSettings(days=30)))
    worker.start()  # runs at once, then waits a day
    try:
        assert wait_for(lambda: worker.last is not None, 60)
    finally:
        worker.stop()
    assert not worker.is_alive()
    assert worker.last is not None and worker.last.alerts == 1
    assert store.case(second.id) is None
    store.close()

"""The `bondwatch` command. Every user error ends in one clear sentence and exit code 2."""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import logging
import os
import shlex
import shutil
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bondwatch.site import Site, SiteError, load_site

if TYPE_CHECKING:
    from sqlalchemy import MetaData

logger = logging.getLogger("bondwatch")
MODEL_HELP = "YOLO model file, .onnx or .pt (default: $BONDWATCH_MODEL, else the bundled model)"


class UserError(Exception):
    """An error in what the user asked for: printed as one line, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (UserError, SiteError) as e:
        print(f"bondwatch: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _one_line(e: Exception) -> str:
    if isinstance(e, SiteError):
        return f"{e.path}: {len(e.errors)} error(s): " + "; ".join(e.errors)
    return str(e)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bondwatch", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="the service: ingest, detection, rules, alerts, dashboard")
    run.add_argument("--site", help="site file (default: the built-in demo site)")
    run.add_argument("--data", default="data", help="data directory (default ./data)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--model", help=MODEL_HELP)
    run.set_defaults(func=cmd_run)

    wk = sub.add_parser("worker", help="ingest, detection and rules for the cameras this worker owns")
    wk.add_argument("--site", required=True, help="site file, the same for every worker")
    wk.add_argument("--data", default="data", help="data directory (shared recordings, SQLite)")
    wk.add_argument("--redis", help="Redis URL shared by the workers (default: $REDIS_URL)")
    wk.add_argument("--worker-id", help="unique worker name (default: HOST-PID)")
    wk.add_argument("--capacity", type=int, default=16, help="most cameras this worker runs")
    wk.add_argument("--lease-s", type=float, default=10.0, help="camera lease time in seconds")
    wk.add_argument("--model", help=MODEL_HELP + "; `none`: ingest and record only, no detection")
    wk.set_defaults(func=cmd_worker)

    web = sub.add_parser("web", help="dashboard and API over the shared database and Redis, no cameras")
    web.add_argument("--site", required=True, help="site file, the same as the workers'")
    web.add_argument("--data", default="data", help="data directory (shared recordings, SQLite)")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8080)
    web.add_argument("--redis", help="the workers' Redis (default: $REDIS_URL)")
    web.set_defaults(func=cmd_web)

    check = sub.add_parser("check-site", help="validate a site file")
    check.add_argument("site")
    check.set_defaults(func=cmd_check_site)

    rep = sub.add_parser("replay", help="run detection and rules over recorded video")
    rep.add_argument("--site", required=True)
    rep.add_argument("--source", action="append", default=[], metavar="CAM=PATH")
    rep.add_argument("--scans", help="scan events, JSON lines")
    rep.add_argument("--out", required=True, help="alerts, JSON lines")
    rep.add_argument("--tracks", help="directory for MOTChallenge track files")
    rep.add_argument("--realtime", action="store_true", help="pace at real time")
    rep.add_argument("--model", help=MODEL_HELP)
    rep.set_defaults(func=cmd_replay)

    al = sub.add_parser("alerts", help="stored alerts")
    al_sub = al.add_subparsers(required=True, metavar="ACTION")
    al_list = al_sub.add_parser("list", help="print stored alerts")
    al_list.add_argument("--data", default="data")
    al_list.add_argument("--since", help="ISO 8601 time")
    al_list.add_argument("--json", action="store_true", help="one JSON object per line")
    al_list.set_defaults(func=cmd_alerts_list)

    user = sub.add_parser("user", help="dashboard accounts")
    user_sub = user.add_subparsers(required=True, metavar="ACTION")
    user_add = user_sub.add_parser("add", help="create an account")
    user_add.add_argument("name")
    user_add.add_argument("--role", required=True, choices=["admin", "officer", "operator"])
    user_add.add_argument(
        "--factory", help="an operator's factory: it sees only cameras with this `factory:`"
    )
    user_add.add_argument("--data", default="data")
    user_add.set_defaults(func=cmd_user_add)

    tk = sub.add_parser("token", help="API tokens with which the factory's systems post scans")
    tk_sub = tk.add_subparsers(required=True, metavar="ACTION")
    tk_add = tk_sub.add_parser("add", help="create a token; prints its secret once")
    tk_add.add_argument("name", help="which system uses it, e.g. mes-line-1")
    tk_add.add_argument("--factory", help="post scans for this factory's stations only")
    tk_add.add_argument("--data", default="data")
    tk_add.set_defaults(func=cmd_token_add)
    tk_list = tk_sub.add_parser("list", help="the tokens (names, factories; never secrets)")
    tk_list.add_argument("--data", default="data")
    tk_list.set_defaults(func=cmd_token_list)
    tk_rev = tk_sub.add_parser("revoke", help="delete a token: its secret stops working at once")
    tk_rev.add_argument("name")
    tk_rev.add_argument("--data", default="data")
    tk_rev.set_defaults(func=cmd_token_revoke)

    nt = sub.add_parser("notify", help="send alert notifications (a consumer of the alert stream)")
    nt.add_argument("--site", required=True, help="site file with the `notifications:` section")
    nt.add_argument("--data", default="data", help="data directory: database, evidence (default ./data)")
    nt.add_argument("--redis", help="the service's Redis (default: $REDIS_URL)")
    nt.add_argument("--consumer", help="this process's name in the consumer group (default notify@HOST)")
    nt.set_defaults(func=cmd_notify)

    vr = sub.add_parser("verify-recordings", help="check the recording hash chains (exit 0 ok, 2 problems)")
    vr.add_argument("--data", default="data", help="data directory (default ./data)")
    vr.add_argument("--camera", help="only this camera")
    vr.set_defaults(func=cmd_verify_recordings)

    au = sub.add_parser("audit", help="the audit trail")
    au_sub = au.add_subparsers(required=True, metavar="ACTION")
    au_verify = au_sub.add_parser("verify", help="check the audit hash chain (exit 0 ok, 2 broken)")
    au_verify.add_argument("--data", default="data", help="data directory (default ./data)")
    au_verify.set_defaults(func=cmd_audit_verify)

    db = sub.add_parser("db", help="the database schema (Alembic migrations)")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    db_up = db_sub.add_parser("upgrade", help="bring the database to the current schema")
    db_up.add_argument("--data", default="data", help="data directory (default ./data)")
    db_up.set_defaults(func=cmd_db_upgrade)
    db_rev = db_sub.add_parser("revision", help="developers: write a migration for changed models")
    db_rev.add_argument("-m", "--message", required=True, help="what the revision changes")
    db_rev.set_defaults(func=cmd_db_revision)

    ret = sub.add_parser("retention", help="delete what is older than the retention period")
    ret_sub = ret.add_subparsers(required=True, metavar="ACTION")
    ret_run = ret_sub.add_parser("run", help="purge old alerts, cases, evidence and audit entries now")
    ret_run.add_argument("--site", help="site file with the `retention:` section (default: 1096 days)")
    ret_run.add_argument("--data", default="data", help="data directory (default ./data)")
    ret_run.set_defaults(func=cmd_retention_run)

    ev = sub.add_parser("evidence", help="signed evidence packages of alerts")
    ev_sub = ev.add_subparsers(required=True, metavar="ACTION")
    ev_export = ev_sub.add_parser("export", help="write the signed package of an alert's case")
    ev_export.add_argument("alert_id")
    ev_export.add_argument("--data", default="data", help="data directory (default ./data)")
    ev_export.add_argument("--out", required=True, help="the package to write (.zip)")
    ev_export.set_defaults(func=cmd_evidence_export)
    ev_verify = ev_sub.add_parser("verify", help="check a package (exit 0 ok, 1 altered, 2 unreadable)")
    ev_verify.add_argument("package")
    ev_verify.add_argument("--key", help="the installation's public key (PEM) the package must be signed by")
    ev_verify.set_defaults(func=cmd_evidence_verify)

    sim = sub.add_parser("sim", help="the workshop simulator")
    sim_sub = sim.add_subparsers(required=True, metavar="ACTION")
    render = sim_sub.add_parser("render", help="render a scenario to videos, scans and truth")
    render.add_argument("--scenario", required=True)
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--out", required=True)
    render.set_defaults(func=cmd_sim_render)
    serve = sim_sub.add_parser("serve", help="serve a scenario's cameras live over RTSP, scans in step")
    serve.add_argument("--scenario", required=True)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--out", help="render directory (default: .work/sim/SCENARIO-SEED, reused)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8554)
    serve.add_argument("--redis", help="publish the scenario's scans on this Redis, as the cameras show them")
    serve.set_defaults(func=cmd_sim_serve)

    tr = sub.add_parser("train", help="train the person+unit detector (simulator + labelled video)")
    tr.add_argument(
        "--sim",
        action="append",
        default=[],
        metavar="SCENARIO:SEEDS",
        help="training scenes, rendered as needed, e.g. examples/scenarios/random.yaml:1-3",
    )
    tr.add_argument(
        "--sim-render-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="an already rendered scenario to train on",
    )
    tr.add_argument(
        "--val-sim",
        action="append",
        default=[],
        metavar="SCENARIO:SEEDS",
        help="held-out scenes, seeds never trained on, e.g. random.yaml:101,102",
    )
    tr.add_argument(
        "--mot",
        action="append",
        default=[],
        metavar="VIDEO=GT:FIRST-LAST[:STEP]",
        help="labelled footage (MOTChallenge), every STEP-th frame of FIRST-LAST",
    )
    tr.add_argument(
        "--val-mot",
        action="append",
        default=[],
        metavar="VIDEO=GT:FIRST-LAST",
        help="held-out labelled frames",
    )
    tr.add_argument("--every-n", type=int, default=36, help="every n-th frame of training scenes")
    tr.add_argument("--val-every-n", type=int, default=10, help="every n-th held-out frame")
    tr.add_argument("--epochs", type=int, default=15)
    tr.add_argument("--hours", type=float, help="time budget: fits the epoch count to it")
    tr.add_argument("--imgsz", type=int, default=640)
    tr.add_argument(
        "--run-imgsz",
        type=int,
        help="size the model runs at; above --imgsz it trains on --imgsz crops of pictures resized to it",
    )
    tr.add_argument("--batch", type=int, default=16)
    tr.add_argument("--close-mosaic", type=int, default=5, help="last epochs without mosaic")
    tr.add_argument("--scale", type=float, default=0.5, help="random zoom range (augmentation)")
    tr.add_argument("--name", default="bondwatch-n", help="model name: OUT/NAME.{pt,onnx,md}")
    tr.add_argument("--from", dest="base", help="checkpoint (.pt) to fine-tune from")
    tr.add_argument("--out", default="models")
    tr.add_argument(
        "--work", default=".work", help="renders in WORK/sim, the resumable run in WORK/train/NAME"
    )
    tr.set_defaults(func=cmd_train)

    qz = sub.add_parser("quantize", help="write the int8 ONNX of a trained .pt (twice as fast on CPU)")
    qz.add_argument("model", help="trained weights, e.g. models/bondwatch-n.pt")
    qz.add_argument(
        "--images", action="append", required=True, metavar="DIR", help="calibration images (training data)"
    )
    qz.add_argument("--count", type=int, default=64, help="how many calibration images to use")
    qz.set_defaults(func=cmd_quantize)
    return p


def cmd_check_site(args: argparse.Namespace) -> int:
    try:
        site = load_site(args.site)
    except SiteError as e:
        for err in e.errors:
            print(f"{e.path}: {err}", file=sys.stderr)
        return 2
    print(f"{args.site}: ok ({len(site.cameras)} cameras, {len(site.zones)} zones)")
    return 0


def _detector(model: str | None, site: Site, cache_dir: Path | None = None, parallel: int | None = None):  # type: ignore[no-untyped-def]
    """The model named on the command line, else by $BONDWATCH_MODEL, the site, the bundle;
    `parallel` model sessions side by side (see Detector), by default the site's `sessions`."""
    from detectors.yolo import DEFAULT_MODEL, Detector, ModelError

    d = site.detection
    path = model or os.environ.get("BONDWATCH_MODEL") or d.model or DEFAULT_MODEL
    try:
        return Detector(
            path, conf=d.conf, batch_size=d.batch_size, cache_dir=cache_dir, parallel=parallel or d.sessions
        )
    except ModelError as e:
        raise UserError(str(e)) from None


def cmd_replay(args: argparse.Namespace) -> int:
    from bondwatch.replay import ReplayError, parse_sources, replay
    from bondwatch.scans import ScanFileError, load_scans
    from streams.source import SourceError

    site = load_site(args.site)
    try:
        sources = parse_sources(site, args.source)
        scans = load_scans(args.scans) if args.scans else []
        if untimed := [s for s in scans if s.t is None]:
            raise UserError(
                f"{args.scans}: {len(untimed)} scan(s) have no `t`; replay needs the video time"
                " of the station camera"
            )
        detector = _detector(args.model, site, parallel=os.cpu_count() or 1)  # replay has the machine
        with open(args.out, "w", encoding="utf-8") as out:
            stats = replay(
                site, sources, out, detector=detector, scans=scans,
                tracks_dir=args.tracks, realtime=args.realtime,
            )  # fmt: skip
    except (ReplayError, ScanFileError, SourceError) as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write {e.filename}: {e.strerror}") from None
    logger.info(
        "replay: %d frames in %.1fs, %d alerts written to %s",
        stats.frames, stats.seconds, stats.alerts, args.out,
    )  # fmt: skip
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bondwatch.demo import SEED, DemoError, prepare_demo
    from bondwatch.service import ServiceError, serve

    data = Path(args.data)
    try:
        demo = None if args.site else prepare_demo(data)
        site = demo.site if demo else load_site(args.site)
        # The zone editor saves to the file the site came from (the demo's is re-rendered, and
        # its edits lost, only when the demo scenario itself changes).
        site_path = Path(args.site) if args.site else data / "demo" / f"seed{SEED}" / "site.yaml"
        detector = _detector(args.model, site, cache_dir=data / "model-cache")
        return serve(
            site, data, host=args.host, port=args.port, model=detector, demo=demo, site_path=site_path
        )
    except (DemoError, ServiceError) as e:
        raise UserError(str(e)) from None


def cmd_worker(args: argparse.Namespace) -> int:
    import re
    import signal
    import socket

    from bondwatch.worker import Worker

    redis_url = args.redis or os.environ.get("REDIS_URL")
    if not redis_url:
        raise UserError("a worker needs the shared Redis: give --redis URL or set REDIS_URL")
    worker_id = args.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", worker_id):
        raise UserError(f"--worker-id {worker_id!r}: use letters, digits and _ . : - only")
    if args.capacity < 1 or args.lease_s <= 0:
        raise UserError("--capacity must be at least 1 and --lease-s above 0")
    site = load_site(args.site)
    data = Path(args.data)
    model = None if args.model == "none" else _detector(args.model, site, cache_dir=data / "model-cache")
    worker = Worker(
        site, data, redis_url=redis_url, worker_id=worker_id,
        capacity=args.capacity, lease_s=args.lease_s, model=model,
    )  # fmt: skip
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.stop())
    return worker.run()


def cmd_web(args: argparse.Namespace) -> int:
    from bondwatch.web import WebError, serve_web

    redis_url = args.redis or os.environ.get("REDIS_URL")
    if not redis_url:
        raise UserError("bondwatch web reads the workers' live view and alerts: give --redis or REDIS_URL")
    site = load_site(args.site)
    try:
        return serve_web(site, Path(args.data), host=args.host, port=args.port, redis_url=redis_url)
    except WebError as e:
        raise UserError(str(e)) from None


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from alerts.store import AlertStore
    from bondwatch.db import database_url

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since).timestamp()
        except ValueError:
            raise UserError(f"--since {args.since!r} is not an ISO 8601 time") from None
    store = AlertStore(database_url(args.data))
    alerts = list(reversed(store.recent(limit=1_000_000, since=since)))
    for a in alerts:
        if args.json:
            print(a.to_json(live=a.ts is not None))
        else:
            when = (
                datetime.fromtimestamp(a.ts).astimezone().isoformat(timespec="seconds")
                if a.ts
                else f"t={a.t:.1f}s"
            )
            track = f"track {a.track}" if a.track is not None else ""
            where = " ".join(x for x in (a.camera, a.zone or "", track) if x)
            print(f"{when}  {a.type:<20} {where}  {a.explanation}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from bondwatch.accounts import AccountError

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        _accounts(args.data).add(args.name, args.role, password, args.factory)
    except AccountError as e:
        raise UserError(str(e)) from None
    of = f", factory {args.factory}" if args.factory else ""
    print(f"user {args.name} ({args.role}{of}) created")
    return 0


def _accounts(data: str):  # type: ignore[no-untyped-def]
    from bondwatch.accounts import Accounts
    from bondwatch.db import database_url

    return Accounts(database_url(data))


def cmd_token_add(args: argparse.Namespace) -> int:
    from bondwatch.accounts import AccountError

    try:
        secret = _accounts(args.data).add_token(args.name, args.factory)
    except AccountError as e:
        raise UserError(str(e)) from None
    of = f" for factory {args.factory}'s stations" if args.factory else " for every station"
    print(f"token {args.name} created{of}; its secret, shown only now:", file=sys.stderr)
    print(secret)
    print("send it as `Authorization: Bearer <secret>` with POST /api/scans", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    for token in _accounts(args.data).tokens():
        created = datetime.fromtimestamp(token.created, UTC).isoformat(timespec="seconds")
        print(f"{token.name}\t{token.factory or '(every factory)'}\tcreated {created}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from bondwatch.accounts import AccountError

    try:
        _accounts(args.data).revoke_token(args.name)
    except AccountError as e:
        raise UserError(str(e)) from None
    print(f"token {args.name} revoked")
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    """The notifier as its own process, next to `bondwatch run` (which runs one as threads too;
    both consume the same group, so an alert is still notified at most once per channel)."""
    import signal
    import threading

    from alerts.notify import NotifyError, NotifyService
    from alerts.store import AlertStore
    from bondwatch.db import database_url

    site = load_site(args.site)
    if not site.notifications.channels:
        raise UserError(f"{args.site} has no notification channels (`notifications: channels:`)")
    redis_url = args.redis or os.environ.get("REDIS_URL")
    if not redis_url:
        raise UserError("bondwatch notify reads the service's alert stream: set REDIS_URL or give --redis")
    store = AlertStore(database_url(args.data))
    try:
        service = NotifyService(site, store, redis_url, Path(args.data), consumer=args.consumer)
    except NotifyError as e:
        store.close()
        raise UserError(str(e)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    print(f"notifying {len(site.notifications.channels)} channel(s)", flush=True)
    while not stop.wait(1.0):
        pass
    service.stop()
    store.close()
    return 0


def cmd_verify_recordings(args: argparse.Namespace) -> int:
    from streams.recordings import verify_recordings

    return verify_recordings(Path(args.data), args.camera)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from bondwatch.audit import AuditLog
    from bondwatch.db import database_url, make_engine

    engine = make_engine(database_url(args.data))
    try:
        count, problem = AuditLog(engine).verify()
    finally:
        engine.dispose()
    if problem is not None:
        raise UserError(f"audit trail broken: {problem.message}")
    print(f"audit trail intact: {count} entries")
    return 0


def cmd_evidence_export(args: argparse.Namespace) -> int:
    from alerts.evidence import ClipPending, Evidence, NoEvidence, cli_actor
    from alerts.store import AlertStore
    from bondwatch.db import database_url
    from streams.recordings import RECORDINGS_SUBDIR, open_store

    data = Path(args.data)
    if not data.is_dir():
        raise UserError(f"no data directory {data}")
    store = AlertStore(database_url(data))
    recording = open_store(data) if (data / RECORDINGS_SUBDIR).is_dir() else None
    try:
        done = Evidence(data, store, recording).export(args.alert_id, args.out, actor=cli_actor())
    except (NoEvidence, ClipPending) as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    clip = "" if done.clip else ", no clip"
    print(f"exported {done.path}: {done.files} files{clip}, signed by {done.fingerprint}")
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from alerts.evidence import PackageInvalid, PackageUnreadable, load_public_key, verify_package

    try:
        key = None
        if args.key:
            try:
                pem = Path(args.key).read_bytes()
            except OSError as e:
                raise PackageUnreadable(f"cannot read the key {args.key}: {e.strerror}") from None
            key = load_public_key(pem, args.key)
        result = verify_package(args.package, key)
    except PackageUnreadable as e:
        raise UserError(str(e)) from None
    except PackageInvalid as e:
        print(f"NOT verified: {e}")
        return 1
    print(f"verified: {result.files} files, signed by {result.fingerprint}")
    return 0


# Every module that defines tables: the migrations must create exactly what they declare
# (tests/test_migrations.py finds any module missing here).
SCHEMA_MODULES = (
    "bondwatch.accounts", "bondwatch.audit", "bondwatch.scanlog", "alerts.store", "alerts.outbox",
    "alerts.delivery", "alerts.notify", "streams.recordings",
)  # fmt: skip


def schema_metadata() -> list[MetaData]:
    """The models' tables, one MetaData per declarative base, for comparing and autogenerating."""
    found: list[MetaData] = []
    for name in SCHEMA_MODULES:
        metadata = importlib.import_module(name).Base.metadata
        if metadata not in found:
            found.append(metadata)
    return found


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bondwatch.db import DatabaseError, current_revision, database_url, make_engine, migrate

    url = database_url(args.data)
    try:
        migrate(url)
    except DatabaseError as e:
        raise UserError(str(e)) from None
    engine = make_engine(url)
    try:
        print(f"database schema at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


def cmd_db_revision(args: argparse.Namespace) -> int:
    """Autogenerate against a scratch database at the newest revision: what differs from the
    models goes into a new revision file, to be read and adjusted before it is committed."""
    import tempfile

    from alembic import command
    from alembic.script import ScriptDirectory

    from bondwatch.db import alembic_config, make_engine, migrate

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/schema.db"
        migrate(url)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                cfg = alembic_config(url, schema_metadata())
                cfg.attributes["connection"] = conn
                head = ScriptDirectory.from_config(cfg).get_current_head() or "0"
                number = f"{int(head) + 1:04d}" if head.isdigit() else None
                script = command.revision(cfg, message=args.message, autogenerate=True, rev_id=number)
        finally:
            engine.dispose()
    print(f"wrote {script.path}")  # type: ignore[union-attr]  # one revision, never a list
    return 0


def cmd_retention_run(args: argparse.Namespace) -> int:
    from bondwatch.db import database_url
    from bondwatch.retention import Retention
    from bondwatch.site import RetentionSettings

    settings = load_site(args.site).retention if args.site else RetentionSettings()
    report = Retention(database_url(args.data), Path(args.data), settings).run()
    print(report.summary())
    return 0


def cmd_sim_render(args: argparse.Namespace) -> int:
    from sim.render import render_scenario
    from sim.scenario import ScenarioError

    try:
        result = render_scenario(args.scenario, args.out, seed=args.seed)
    except ScenarioError as e:
        raise UserError(str(e)) from None
    print(json.dumps({"out": str(args.out), **getattr(result, "summary", {})}))
    return 0


def cmd_sim_serve(args: argparse.Namespace) -> int:
    import signal

    from sim.scenario import ScenarioError
    from sim.serve import ServeError, SimServer

    scenario = Path(args.scenario)
    try:
        out = Path(args.out) if args.out else _rendered(scenario, args.seed, Path(".work") / "sim")
        if args.out and not (out / "truth.jsonl").exists():
            from sim.render import render_scenario

            render_scenario(scenario, out, seed=args.seed)
    except ScenarioError as e:
        raise UserError(str(e)) from None
    server = SimServer(out, args.host, args.port)
    try:
        served = server.start(args.redis)
    except ServeError as e:
        raise UserError(str(e)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for camera, url in served.urls.items():
        print(f"{camera}: {url}")
    print(f"site file for `bondwatch run --site`: {served.site} (loop {served.loop_s:.0f} s)", flush=True)
    try:
        while not stop.wait(1.0):
            if server.proc is not None and server.proc.poll() is not None:
                raise UserError("the RTSP server stopped")
    finally:
        server.stop()
    return 0


def _seeds(text: str) -> list[int]:
    """`1-3,7` -> [1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += range(int(lo), int(hi or lo) + 1)
    return seeds


def _sim_pairs(specs: list[str]) -> list[tuple[Path, int]]:
    pairs = []
    for spec in specs:
        scenario, _, seeds = spec.rpartition(":")
        try:
            pairs += [(Path(scenario).resolve(), seed) for seed in _seeds(seeds)]
        except ValueError:
            raise UserError(f"{spec!r} is not SCENARIO:SEEDS (e.g. random.yaml:1-3)") from None
        if not Path(scenario).is_file():
            raise UserError(f"scenario {scenario} does not exist")
    return pairs


def _scene_list(pairs: list[tuple[Path, int]]) -> str:
    return ", ".join(f"`{scenario.name}` seed {seed}" for scenario, seed in pairs)


def _rendered(scenario: Path, seed: int, cache: Path) -> Path:
    """A scenario rendered once per seed; a render cut short is redone, never half-used."""
    from sim.render import render_scenario

    out = cache / f"{scenario.stem}-{seed}"
    if not (out / "truth.jsonl").exists():
        logger.info("rendering %s seed %d into %s", scenario, seed, out)
        partial = out.with_name(out.name + ".partial")
        render_scenario(scenario, partial, seed=seed)
        partial.rename(out)
    return out


def cmd_quantize(args: argparse.Namespace) -> int:
    from detectors.quantize import QuantizeError, calibration_images, quantize
    from detectors.yolo import DEFAULT_CACHE, trained_imgsz

    pt = Path(args.model)
    if pt.suffix != ".pt" or not pt.is_file():
        raise UserError(f"{pt} is not a trained .pt file")
    try:
        images = calibration_images([Path(d) for d in args.images], args.count)
    except QuantizeError as e:
        raise UserError(str(e)) from None
    out = quantize(pt, images, trained_imgsz(pt), DEFAULT_CACHE)
    print(f"wrote {out} (calibrated on {len(images)} images)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from detectors.training import TrainingError, parse_mot_source, train_bundled
    from sim.dataset import export_yolo
    from sim.scenario import ScenarioError

    train_scenes, held_scenes = _sim_pairs(args.sim), _sim_pairs(args.val_sim)
    if leaked := sorted(set(train_scenes) & set(held_scenes)):
        raise UserError(f"held-out scenes are also training scenes: {leaked}")
    if not held_scenes or not (train_scenes or args.sim_render_dir):
        raise UserError("give training scenes (--sim or --sim-render-dir) and --val-sim scenes")
    work = Path(args.work)
    run = work / "train" / args.name
    try:
        mot = [parse_mot_source(spec) for spec in args.mot]
        val_mot = [parse_mot_source(spec) for spec in args.val_mot]
        exports = {"sim-train": 0.2, "sim-heldout": 1.0}
        if not all((run / name / "data.yaml").exists() for name in exports):
            train_dirs = [_rendered(sc, seed, work / "sim") for sc, seed in train_scenes]
            held_dirs = [_rendered(sc, seed, work / "sim") for sc, seed in held_scenes]
            for name, dirs, every_n in (
                ("sim-train", [*train_dirs, *map(Path, args.sim_render_dir)], args.every_n),
                ("sim-heldout", held_dirs, args.val_every_n),
            ):
                shutil.rmtree(run / name, ignore_errors=True)
                export_yolo(dirs, run / name, every_n=every_n, val_fraction=exports[name])
        trained_on = [_scene_list(train_scenes)] if train_scenes else []
        trained_on += [f"`{d}`" for d in args.sim_render_dir]
        about = {
            "simulator, training": ", ".join(trained_on) + f"; every {args.every_n}th frame",
            "simulator, held out": _scene_list(held_scenes) + f"; every {args.val_every_n}th frame",
            "footage, training": "; ".join(m.label for m in mot) or "none",
            "footage, held out": "; ".join(m.label for m in val_mot) or "none",
            "command": shlex.join(["bondwatch", *sys.argv[1:]]),
        }  # fmt: skip
        result = train_bundled(
            args.name, run / "sim-train" / "data.yaml", run / "sim-heldout" / "data.yaml",
            mot, val_mot, run, Path(args.out), base=Path(args.base) if args.base else None,
            epochs=args.epochs, hours=args.hours, imgsz=args.imgsz, batch=args.batch,
            close_mosaic=args.close_mosaic, scale=args.scale, about=about, run_imgsz=args.run_imgsz,
        )  # fmt: skip
    except (TrainingError, ScenarioError) as e:
        raise UserError(str(e)) from None
    for where, per_class in result.scores.items():
        for cls, score in per_class.items():
            print(f"{where}: {cls} mAP50 {score.map50:.3f} (TP conf median {score.tp_conf_median:.2f},"
                  f" p10 {score.tp_conf_p10:.2f})")  # fmt: skip
    print(f"wrote {result.weights}, {result.onnx}, {result.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

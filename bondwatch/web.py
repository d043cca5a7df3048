"""`bondwatch web`: the dashboard and its API against the site's shared database and Redis,
ingesting no camera itself. Any number may run behind a load balancer.

The cameras are ingested by `bondwatch worker` processes; their live view comes through Redis
(`dashboard.remote.RemoteLive`), alerts from the alert stream, history, cases, accounts and the
audit trail from the shared database, recordings and evidence from the shared data directory.
Sessions live in the process's memory, so a load balancer in front of several must keep a
browser on one of them (sticky sessions). See docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import uvicorn

from alerts.bus import AlertBus
from alerts.evidence import Evidence
from alerts.store import AlertStore
from bondwatch.accounts import Accounts
from bondwatch.db import DatabaseError, database_url, migrate
from bondwatch.site import Site
from dashboard.app import create_app
from dashboard.remote import RemoteLive
from streams.recordings import open_store

logger = logging.getLogger(__name__)


class WebError(Exception):
    pass


def serve_web(site: Site, data_dir: Path, *, host: str, port: int, redis_url: str) -> int:
    return asyncio.run(_serve_web(site, data_dir, host=host, port=port, redis_url=redis_url))


async def _serve_web(site: Site, data_dir: Path, *, host: str, port: int, redis_url: str) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    db_url = database_url(data_dir)
    try:
        migrate(db_url)  # idempotent: whichever process starts first brings the schema up
    except DatabaseError as e:
        raise WebError(str(e)) from None
    store = AlertStore(db_url)
    accounts = Accounts(db_url)
    if not accounts.count():
        # Several web processes may start at once: none of them invents the first account.
        print("No account yet: create one with `bondwatch user add NAME --role admin`", flush=True)
    bus = AlertBus(redis_url)
    # Read-only use of the recordings: the workers record and apply retention, not the web.
    recording = open_store(data_dir) if site.recording.enabled else None
    evidence = Evidence(data_dir, store, recording, site)  # no frame ring: the web takes no snapshots
    live = RemoteLive(site, redis_url)
    app = create_app(live, store, bus, accounts, title="BondWatch", recording=recording, evidence=evidence)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        live.start()
        n = len(site.cameras)
        print(
            f"BondWatch web: http://{host}:{port}/  ({n} camera{'s' * (n != 1)}, live view through Redis)",
            flush=True,
        )
        await server.serve()
    finally:
        logger.info("web: shutting down")
        live.stop()
        bus.close()
        if recording is not None:
            recording.engine.dispose()
        store.close()
    return 0

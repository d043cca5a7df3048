"""A burst of alerts through storage, the outbox, Redis and the notifier, while things break.

    python bench/alert_burst.py [--alerts 1000]

A service process does what `bondwatch run` does with an alert: it stores it with its outbox
row in one transaction, publishes the outbox to a real redis-server, and its notifier threads
consume the stream (consumer group `notify`) and post each alert to a local webhook (json://).
(E-mail is left out: Apprise paces its SMTP sends, about one every two seconds; the at-most-once
side of a channel people read is tested in tests/test_delivery.py.) The
service raises the alerts of the burst at about 200 a second. During the burst Redis is killed
and restarted empty twice (at 30 % and 65 % of the alerts stored) and the service is SIGKILLed
once (at 50 %) and restarted, raising the rest. Then the bench waits until every delivery row is
final and prints: alerts stored (and distinct), consumed, and per channel the messages received
(distinct alerts, missing, repeats) and the delivery states. The promise: every alert stored
once and consumed; the webhook gets every alert at least once (a send cut short by the kill is
sent again: the receiver drops a repeat by alert id, so a repeat can only follow such a cut).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from test_notify import SITE_YAML, Webhook, make_alert  # noqa: E402

from alerts.bus import AlertBus  # noqa: E402
from alerts.delivery import ConsumedRow  # noqa: E402
from alerts.notify import DeliveryRow  # noqa: E402
from alerts.outbox import Outbox, Publisher  # noqa: E402
from alerts.store import AlertRow, AlertStore  # noqa: E402
from bondwatch.redis_server import RedisServer  # noqa: E402
from bondwatch.service import start_notify  # noqa: E402
from bondwatch.site import load_site  # noqa: E402

RATE = 200.0  # alerts a second


def serve(tmp: Path, redis_url: str, n: int) -> None:
    """The service: raise alerts from the first one not stored yet up to `n`, then keep
    publishing and notifying until SIGTERM (or SIGKILL)."""
    store = AlertStore(f"sqlite:///{tmp}/bondwatch.db")
    outbox = Outbox(store)
    publisher = Publisher(outbox, AlertBus(redis_url), backoff_max_s=0.5)
    publisher.start()
    notify = start_notify(load_site(tmp / "site.yaml"), store, redis_url, tmp, "http://127.0.0.1:1/")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    first = stored(store)
    t0 = time.monotonic()
    for i in range(first, n):
        outbox.emit(make_alert(i=i))
        time.sleep(max(0.0, t0 + (i - first + 1) / RATE - time.monotonic()))
    stop.wait()
    if notify is not None:
        notify.stop()
    publisher.stop()


def stored(store: AlertStore) -> int:
    with Session(store.engine) as s:
        return s.scalar(select(func.count()).select_from(AlertRow)) or 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=1000)
    ap.add_argument("--serve", nargs=2, metavar=("DIR", "REDIS_URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = args.alerts
    if args.serve:
        serve(Path(args.serve[0]), args.serve[1], n)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bondwatch-burst-"))
    hook = Webhook().start()
    (tmp / "site.yaml").write_text(
        SITE_YAML
        + f"""
  snapshot_wait_s: 0
  digest_after: 100000
  rate_limit: {{max_per_minute: 100000}}
  retry: {{max_attempts: 10, backoff_s: 0.2, backoff_max_s: 2}}
  send_timeout_s: 5
  channels: [{{id: desk, url: '{hook.url()}'}}]
"""
    )
    store = AlertStore(f"sqlite:///{tmp}/bondwatch.db")
    server = RedisServer(tmp / "redis", persist=False).start()

    def service() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, __file__, "--alerts", str(n), "--serve", str(tmp), server.url],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(tmp / "service.log").open("ab"),
        )  # fmt: skip

    proc = service()
    t0 = time.monotonic()
    for part, event in ((0.3, "redis"), (0.5, "kill"), (0.65, "redis")):
        while stored(store) < part * n:
            time.sleep(0.005)
        if event == "redis":
            print(f"Redis killed at {stored(store)} alerts stored, restarted empty 1 s later")
            server.kill()
            time.sleep(1.0)
            server = RedisServer(tmp / "redis", port=server.port, persist=False).start()
        else:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            print(f"service SIGKILLed at {stored(store)} alerts stored; restarted")
            proc = service()
    while stored(store) < n:
        time.sleep(0.1)
    print(f"{n} alerts stored {time.monotonic() - t0:.1f} s after the start")

    def states() -> list[tuple[str, str, str]]:
        with Session(store.engine) as s:
            return list(s.execute(select(DeliveryRow.channel, DeliveryRow.alert_id, DeliveryRow.state)).all())

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        st = states()
        if len(st) == n and all(state in ("sent", "failed") for _, _, state in st):
            break
        time.sleep(0.5)
    print(f"every delivery final {time.monotonic() - t0:.1f} s after the start")
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    with Session(store.engine) as s:
        consumed = len(s.scalars(select(ConsumedRow.alert_id)).all())
        ids = set(s.scalars(select(AlertRow.id)).all())
        tracks = len(set(s.scalars(select(AlertRow.track)).all()))
    print(f"stored {len(ids)} (distinct events {tracks})   consumed {consumed}")
    received = {"desk": hook.alert_ids()}
    for channel, got in received.items():
        rows = {alert: state for ch, alert, state in states() if ch == channel}
        failed = {alert for alert, state in rows.items() if state == "failed"}
        print(f"{channel:<5} received {len(got)}   distinct {len(set(got))}   missing {len(ids - set(got))}"
              f"   repeats {len(got) - len(set(got))}   rows {dict(Counter(rows.values()))}"
              f"   failed rows the receiver has: {len(failed & set(got))} of {len(failed)}")  # fmt: skip
    hook.stop()
    server.stop()


if __name__ == "__main__":
    main()

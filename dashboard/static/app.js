// BondWatch dashboard: camera tiles over WebRTC and a live alert list over a WebSocket.
// Vanilla JS, no build step: the page must work on a workshop LAN with no internet.
"use strict";

const I18N = {
  "zh-CN": {
    cameras: "摄像头",
    alerts: "告警",
    no_alerts: "暂无告警",
    conn_connecting: "连接中",
    conn_open: "实时",
    conn_closed: "重连中",
    unauthorized_entry: "未授权进入",
    unscanned_departure: "未扫码离开",
    camera_offline: "摄像头离线",
    camera_online: "摄像头恢复",
    state_connecting: "连接中",
    state_live: "在线",
    state_stalled: "卡顿",
    state_offline: "离线",
    state_unknown: "未知",
    camera: "摄像头",
    zone: "区域",
    station: "工位",
    track: "目标",
    confidence: "置信度",
    zones: "区域",
    video_connecting: "正在连接视频…",
    video_lost: "视频中断，正在重连…",
    cameras_summary: (live, all) => `${live}/${all} 在线`,
    sign_out: "退出登录",
    role_admin: "管理员",
    role_officer: "海关关员",
    role_operator: "操作员",
  },
  en: {
    cameras: "Cameras",
    alerts: "Alerts",
    no_alerts: "No alerts",
    conn_connecting: "Connecting",
    conn_open: "Live",
    conn_closed: "Reconnecting",
    unauthorized_entry: "Unauthorized entry",
    unscanned_departure: "Unscanned departure",
    camera_offline: "Camera offline",
    camera_online: "Camera back online",
    state_connecting: "Connecting",
    state_live: "Live",
    state_stalled: "Stalled",
    state_offline: "Offline",
    state_unknown: "Unknown",
    camera: "Camera",
    zone: "Zone",
    station: "Station",
    track: "Track",
    confidence: "Conf.",
    zones: "Zones",
    video_connecting: "Connecting video…",
    video_lost: "Video lost, reconnecting…",
    cameras_summary: (live, all) => `${live}/${all} live`,
    sign_out: "Sign out",
    role_admin: "Administrator",
    role_officer: "Customs officer",
    role_operator: "Operator",
  },
};
const LANG_KEY = "bondwatch.lang";
const MAX_ALERTS = 300;
const HEALTH_REFRESH_MS = 5000;

let lang = I18N[localStorage.getItem(LANG_KEY)] ? localStorage.getItem(LANG_KEY) : "zh-CN";
const alerts = new Map(); // id -> alert, rendered newest first by `ts`
const tiles = new Map(); // camera id -> CameraTile
let cameras = [];
let me = null; // {name, role} of the signed-in user
let alertSocketState = "connecting";

function t(key, ...args) {
  const value = I18N[lang][key] ?? I18N["zh-CN"][key] ?? key;
  return typeof value === "function" ? value(...args) : value;
}

function setLang(next) {
  lang = I18N[next] ? next : "zh-CN";
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.classList.toggle("active", b.dataset.lang === lang);
  }
  setConn(alertSocketState);
  renderUser();
  for (const tile of tiles.values()) tile.render();
  renderCameraSummary();
  renderAlerts();
  tickClock();
}

// ---------- session: every request is signed in; losing the session means the login page ----------

function toLogin() {
  location.replace("/login");
}

async function api(path, options) {
  const res = await fetch(path, options);
  if (res.status === 401) {
    toLogin();
    throw new Error(`${path}: signed out`);
  }
  return res;
}

function renderUser() {
  document.getElementById("user-name").textContent = me ? me.name : "";
  document.getElementById("user-role").textContent = me ? t(`role_${me.role}`) : "";
}

async function loadMe() {
  const res = await api("/api/me");
  if (!res.ok) throw new Error(`GET /api/me: ${res.status}`);
  me = await res.json();
  renderUser();
}

async function signOut() {
  await fetch("/api/logout", { method: "POST" }).catch(() => {});
  toLogin();
}

// ---------- clock and connection indicator ----------

function tickClock() {
  document.getElementById("clock").textContent = new Date().toLocaleString(lang, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

function setConn(state) {
  alertSocketState = state;
  const el = document.getElementById("conn");
  el.dataset.state = state;
  document.getElementById("conn-label").textContent = t(`conn_${state}`);
}

// ---------- cameras ----------

class CameraTile {
  constructor(camera) {
    this.camera = camera;
    const node = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
    node.dataset.camera = camera.id;
    this.el = node;
    this.video = node.querySelector("video");
    this.video.dataset.camera = camera.id;
    this.status = node.querySelector(".video-status");
    this.pc = null;
    this.retryMs = 1000;
    this.lastFrames = 0;
    this.recentFrames = 0;
    this.stallChecks = 0;
    this.videoState = "connecting";
    this.video.addEventListener("playing", () => {
      this.videoState = "playing";
      this.render();
    });
    this.render();
    setInterval(() => this.measure(), 1000);
  }

  framesDecoded() {
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    return q ? q.totalVideoFrames : this.video.webkitDecodedFrameCount || 0;
  }

  update(camera) {
    this.camera = camera;
    this.render();
  }

  render() {
    const c = this.camera;
    const state = c.health ? c.health.state : "unknown";
    this.el.querySelector(".name").textContent = c.name;
    this.el.querySelector(".cam-id").textContent = c.id;
    const badge = this.el.querySelector(".health");
    badge.dataset.state = state;
    badge.textContent = t(`state_${state}`);
    const zones = c.zones.map((z) => z.id).join(", ");
    this.el.querySelector(".zones").textContent = zones ? `${t("zones")}: ${zones}` : "";
    const stats = [];
    if (c.health && state === "live" && c.health.fps !== null) stats.push(`${c.health.fps.toFixed(1)} fps`);
    if (this.videoState === "playing" && state !== "offline") {
      stats.push(`${this.video.videoWidth}×${this.video.videoHeight}`);
    }
    if (c.health && state !== "live" && c.health.error) stats.push(c.health.error);
    const statsEl = this.el.querySelector(".stats");
    statsEl.textContent = stats.join(" · ");
    statsEl.classList.toggle("error", Boolean(c.health && state !== "live" && c.health.error));
    this.status.textContent =
      this.videoState === "playing" ? "" : t(this.videoState === "lost" ? "video_lost" : "video_connecting");
  }

  measure() {
    const frames = this.framesDecoded();
    this.recentFrames = Math.max(0, frames - this.lastFrames);
    this.lastFrames = frames;
    if (frames > 0 && this.recentFrames > 0) {
      this.videoState = "playing";
      this.stallChecks = 0;
      this.retryMs = 1000;
    } else if (this.videoState === "playing" && ++this.stallChecks >= 10) {
      // Connected but no picture for 10 s: the peer is dead even if ICE has not noticed yet.
      this.restart();
    }
    this.render();
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      this.video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const s = pc.connectionState;
      if (s === "failed" || s === "closed") this.restart();
      if (s === "disconnected") setTimeout(() => {
        if (this.pc === pc && pc.connectionState === "disconnected") this.restart();
      }, 5000);
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringDone(pc, 3000);
      const res = await api("/api/webrtc/offer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ camera: this.camera.id, sdp: pc.localDescription.sdp, type: "offer" }),
      });
      if (!res.ok) throw new Error(`offer refused: ${res.status}`);
      await pc.setRemoteDescription(await res.json());
    } catch (err) {
      console.warn(`camera ${this.camera.id}:`, err);
      if (this.pc === pc) this.restart();
    }
  }

  restart() {
    if (this.pc) this.pc.close();
    this.pc = null;
    this.videoState = "lost";
    this.stallChecks = 0;
    this.render();
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 15000);
    setTimeout(() => { if (!this.pc) this.start(); }, wait);
  }
}

function iceGatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

async function loadCameras() {
  const res = await api("/api/cameras");
  if (!res.ok) throw new Error(`GET /api/cameras: ${res.status}`);
  cameras = await res.json();
  const grid = document.getElementById("grid");
  for (const cam of cameras) {
    let tile = tiles.get(cam.id);
    if (tile) {
      tile.update(cam);
    } else {
      tile = new CameraTile(cam);
      tiles.set(cam.id, tile);
      grid.appendChild(tile.el);
      tile.start();
    }
  }
  renderCameraSummary();
}

function renderCameraSummary() {
  const live = cameras.filter((c) => c.health && c.health.state === "live").length;
  document.getElementById("camera-summary").textContent = t("cameras_summary", live, cameras.length);
}

// ---------- alerts ----------

function alertTime(a) {
  return a.ts ? new Date(a.ts) : null;
}

function formatTime(date) {
  if (!date) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (!sameDay) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return date.toLocaleString(lang, opts);
}

function addAlerts(list, fresh) {
  for (const a of list) {
    if (!alerts.has(a.id)) alerts.set(a.id, { ...a, fresh });
  }
  const sorted = [...alerts.values()].sort((x, y) => (alertTime(y) || 0) - (alertTime(x) || 0));
  for (const a of sorted.slice(MAX_ALERTS)) alerts.delete(a.id);
  renderAlerts();
}

function renderAlerts() {
  const list = document.getElementById("alert-list");
  const tpl = document.getElementById("alert-template").content.firstElementChild;
  const sorted = [...alerts.values()].sort((x, y) => (alertTime(y) || 0) - (alertTime(x) || 0));
  const nodes = sorted.map((a) => {
    const li = tpl.cloneNode(true);
    li.dataset.type = a.type;
    li.dataset.id = a.id;
    if (a.fresh) li.classList.add("fresh");
    li.querySelector(".alert-type").textContent = t(a.type);
    const time = li.querySelector(".alert-time");
    const at = alertTime(a);
    time.textContent = formatTime(at);
    if (at) time.dateTime = at.toISOString();
    const meta = [];
    const cam = cameras.find((c) => c.id === a.camera);
    meta.push(`${t("camera")} ${cam ? cam.name : a.camera}`);
    if (a.zone) meta.push(`${t("zone")} ${a.zone}`);
    if (a.station && a.station !== a.zone) meta.push(`${t("station")} ${a.station}`);
    if (a.track !== undefined && a.track !== null) meta.push(`${t("track")} #${a.track}`);
    if (a.confidence !== undefined && a.confidence !== null) {
      meta.push(`${t("confidence")} ${a.confidence.toFixed(2)}`);
    }
    const metaEl = li.querySelector(".alert-meta");
    for (const m of meta) {
      const span = document.createElement("span");
      span.textContent = m;
      metaEl.appendChild(span);
    }
    li.querySelector(".alert-explanation").textContent = a.explanation || "";
    a.fresh = false;
    return li;
  });
  list.replaceChildren(...nodes);
  const count = document.getElementById("alert-count");
  count.textContent = String(alerts.size);
  count.classList.toggle("zero", alerts.size === 0);
  document.getElementById("alert-empty").hidden = alerts.size > 0;
}

async function loadAlerts() {
  const res = await api("/api/alerts?limit=200");
  if (!res.ok) throw new Error(`GET /api/alerts: ${res.status}`);
  addAlerts(await res.json(), false);
}

// The socket is opened before the history is fetched, and alerts are merged by id, so an
// alert raised while the page loads is neither lost nor shown twice.
let socketRetryMs = 1000;
function connectAlerts() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/alerts`);
  ws.onopen = () => {
    socketRetryMs = 1000;
    setConn("open");
    loadAlerts().catch((err) => console.warn(err));
  };
  ws.onmessage = (ev) => addAlerts([JSON.parse(ev.data)], true);
  ws.onclose = (ev) => {
    if (ev.code === 4401) return toLogin();
    setConn("closed");
    setTimeout(connectAlerts, socketRetryMs);
    socketRetryMs = Math.min(socketRetryMs * 2, 15000);
  };
}

async function refreshHealth() {
  try {
    await loadCameras();
  } catch (err) {
    console.warn(err);
  }
}

window.bondwatch = {
  framesDecoded: (camera) => (tiles.has(camera) ? tiles.get(camera).framesDecoded() : 0),
  alertCount: () => alerts.size,
};

document.addEventListener("DOMContentLoaded", async () => {
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => setLang(b.dataset.lang));
  }
  document.getElementById("logout").addEventListener("click", signOut);
  setLang(lang);
  setInterval(tickClock, 1000);
  loadMe().catch((err) => console.warn(err));
  connectAlerts();
  await refreshHealth();
  setInterval(refreshHealth, HEALTH_REFRESH_MS);
  renderAlerts();
});

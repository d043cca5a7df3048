// Serial trace (进—修—出): a serial's scans across stations as a vertical timeline, each with a
// link to its station's video at the scan time, beside the alerts that concern the serial.
"use strict";

Object.assign(I18N["zh-CN"], {
  trace_title: "序列号追溯 · 进—修—出",
  trace_subtitle: "输入设备序列号，查看其在各工位的扫码记录、相关告警及对应录像。",
  trace_placeholder: "序列号，例如 SN0001234",
  trace_search: "追溯",
  trace_steps: "扫码轨迹",
  trace_alerts: "相关告警",
  trace_no_alerts: "没有与该序列号相关的告警",
  trace_prompt: "请输入序列号开始追溯。",
  trace_none: (s) => `没有找到序列号 ${s} 的扫码记录。`,
  trace_loading: "查询中…",
  trace_failed: (status) => `查询失败（${status}）。`,
  trace_summary: (s, n, st, a) => `序列号 ${s}：${n} 次扫码，经过 ${st} 个工位，${a} 条相关告警`,
  trace_span: (d) => `历时 ${d}`,
  step_in: "进",
  step_repair: "修",
  step_out: "出",
  step_in_long: "进场",
  step_repair_long: "维修",
  step_out_long: "出场",
  step_by_order: "按时间顺序推断",
  operator: "操作员",
  trace_video: "查看录像",
  trace_no_camera: "该工位未配置摄像头",
  match_mentions: "告警说明中提及该序列号",
  match_near_scan: (off) => `该工位扫码窗口内的离开（扫码后 ${off} 秒，疑似相关）`,
  trace_method:
    "匹配方式：告警说明中完整出现该序列号；或同一工位的未扫码离开发生在该次扫码可覆盖的时间窗口内（疑似，需人工确认）。",
  duration_h: (h, m) => `${h} 小时 ${m} 分`,
  duration_m: (m) => `${m} 分钟`,
});
Object.assign(I18N.en, {
  trace_title: "Serial trace · In—Repair—Out",
  trace_subtitle: "Enter a unit's serial number to see its scans at each station, related alerts and the video.",
  trace_placeholder: "Serial number, e.g. SN0001234",
  trace_search: "Trace",
  trace_steps: "Scan history",
  trace_alerts: "Related alerts",
  trace_no_alerts: "No alerts concern this serial",
  trace_prompt: "Enter a serial number to trace it.",
  trace_none: (s) => `No scans of serial ${s} were found.`,
  trace_loading: "Searching…",
  trace_failed: (status) => `The search failed (${status}).`,
  trace_summary: (s, n, st, a) =>
    `Serial ${s}: ${n} scan${n === 1 ? "" : "s"} at ${st} station${st === 1 ? "" : "s"}, ${a} related alert${a === 1 ? "" : "s"}`,
  trace_span: (d) => `over ${d}`,
  step_in: "In",
  step_repair: "Repair",
  step_out: "Out",
  step_in_long: "Received",
  step_repair_long: "Repair",
  step_out_long: "Shipped",
  step_by_order: "inferred from the order",
  operator: "Operator",
  trace_video: "Video",
  trace_no_camera: "No camera watches this station",
  match_mentions: "The alert's explanation names this serial",
  match_near_scan: (off) => `Departure within this scan's window (${off} s after the scan; possibly related)`,
  trace_method:
    "Matching: the alert's explanation names the serial exactly, or an unscanned departure at the same station falls in the window this scan could have covered (a candidate to check, not proof).",
  duration_h: (h, m) => `${h} h ${m} min`,
  duration_m: (m) => `${m} min`,
});

const traceState = { serial: "", data: null, status: "prompt", error: null };

function traceDuration(ms) {
  const minutes = Math.round(ms / 60000);
  if (minutes < 60) return t("duration_m", minutes);
  return t("duration_h", Math.floor(minutes / 60), minutes % 60);
}

async function runTrace(serial) {
  traceState.serial = serial;
  traceState.data = null;
  traceState.status = "loading";
  renderTrace();
  try {
    const res = await api(`/api/trace/${encodeURIComponent(serial)}`);
    if (!res.ok) {
      traceState.status = "error";
      traceState.error = t("trace_failed", res.status);
    } else {
      traceState.data = await res.json();
      traceState.status = "done";
    }
  } catch (err) {
    console.warn(err);
    traceState.status = "error";
    traceState.error = t("trace_failed", "—");
  }
  renderTrace();
}

function renderTrace() {
  document.getElementById("trace-serial").placeholder = t("trace_placeholder");
  const { data, status } = traceState;
  const empty = document.getElementById("trace-empty");
  const summary = document.getElementById("trace-summary");
  const timeline = document.getElementById("trace-timeline");
  const alertList = document.getElementById("trace-alerts");
  timeline.replaceChildren();
  alertList.replaceChildren();
  summary.replaceChildren();
  const messages = {
    prompt: t("trace_prompt"),
    loading: t("trace_loading"),
    error: traceState.error,
  };
  empty.textContent = messages[status] ?? (data && !data.scans.length ? t("trace_none", data.serial) : "");
  empty.hidden = !empty.textContent;
  document.getElementById("trace-alerts-empty").hidden = Boolean(data && data.alerts.length);
  if (!data) return;
  renderTraceSummary(summary, data);
  const nearByScan = new Map();
  for (const a of data.alerts) {
    if (a.scan) nearByScan.set(a.scan, [...(nearByScan.get(a.scan) || []), a]);
  }
  timeline.replaceChildren(...data.scans.map((s) => traceStep(s, nearByScan.get(s.id) || [])));
  alertList.replaceChildren(...data.alerts.map(traceAlert));
}

function renderTraceSummary(el, data) {
  if (!data.scans.length) return;
  const stations = new Set(data.scans.map((s) => s.station)).size;
  el.append(htmlEl("strong", "", t("trace_summary", data.serial, data.scans.length, stations, data.alerts.length)));
  const first = new Date(data.scans[0].ts);
  const last = new Date(data.scans[data.scans.length - 1].ts);
  if (last > first) el.append(htmlEl("span", "muted", ` · ${t("trace_span", traceDuration(last - first))}`));
  const flow = htmlEl("div", "trace-flow");
  for (const step of ["in", "repair", "out"]) {
    const n = data.scans.filter((s) => s.step === step).length;
    const chip = htmlEl("span", "flow-chip", `${t(`step_${step}`)} ${n}`);
    chip.dataset.step = step;
    chip.classList.toggle("none", n === 0);
    flow.append(chip);
  }
  el.append(flow);
}

function traceStep(scan, near) {
  const li = htmlEl("li", "trace-step");
  li.dataset.step = scan.step;
  li.dataset.id = scan.id;
  const marker = htmlEl("div", "step-marker", t(`step_${scan.step}`));
  const body = htmlEl("div", "step-body");
  const head = htmlEl("div", "step-head");
  head.append(htmlEl("span", "step-name", t(`step_${scan.step}_long`)));
  const named = scan.station_name && scan.station_name !== scan.station ? ` · ${scan.station_name}` : "";
  const station = htmlEl("span", "step-station", `${t("station")} ${scan.station}${named}`);
  head.append(station);
  const time = htmlEl("time", "step-time", longTime(scan.ts));
  time.dateTime = scan.ts;
  head.append(time);
  body.append(head);
  const meta = [];
  if (scan.operator) meta.push(`${t("operator")} ${scan.operator}`);
  if (scan.step_from === "order") meta.push(t("step_by_order"));
  if (meta.length) body.append(htmlEl("div", "step-meta muted", meta.join(" · ")));
  const videos = htmlEl("div", "step-videos");
  if (!scan.video.length) videos.append(htmlEl("span", "muted", t("trace_no_camera")));
  for (const v of scan.video) {
    const a = htmlEl("a", "video-link");
    a.href = `#recordings?${new URLSearchParams({ camera: v.camera, t: v.t.toFixed(3) })}`;
    a.dataset.camera = v.camera;
    a.dataset.t = String(v.t);
    a.append(htmlEl("span", "play", "▶"), document.createTextNode(` ${t("trace_video")} · ${v.name}`));
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      openVideoAt(v.camera, v.t);
    });
    videos.append(a);
  }
  body.append(videos);
  for (const a of near) {
    const warn = htmlEl("button", "step-alert", `⚠ ${t(a.alert.type)} · ${formatTime(new Date(a.alert.ts))}`);
    warn.type = "button";
    warn.addEventListener("click", () => openTraceAlert(a.alert.id));
    body.append(warn);
  }
  li.append(marker, body);
  return li;
}

function traceAlert(item) {
  const a = item.alert;
  const li = htmlEl("li", "trace-alert");
  li.dataset.type = a.type;
  li.dataset.id = a.id;
  li.dataset.match = item.match;
  li.tabIndex = 0;
  const row = htmlEl("div", "alert-row");
  row.append(htmlEl("span", "alert-type", t(a.type)));
  const state = htmlEl("span", "state-badge alert-state");
  setStateBadge(state, a.state);
  row.append(state);
  const time = htmlEl("time", "alert-time", a.ts ? longTime(a.ts) : "");
  row.append(time);
  li.append(row);
  const how = item.match === "mentions" ? t("match_mentions") : t("match_near_scan", item.offset_s);
  li.append(htmlEl("div", `match match-${item.match}`, how));
  li.append(htmlEl("div", "alert-meta", alertMeta(a).join(" · ")));
  if (a.explanation) li.append(htmlEl("div", "alert-explanation", explanationOf(a)));
  li.addEventListener("click", () => openTraceAlert(a.id));
  li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openTraceAlert(a.id); });
  return li;
}

function openTraceAlert(id) {
  if (typeof openCase === "function") openCase(id);
}

async function suggestSerials() {
  const prefix = document.getElementById("trace-serial").value.trim();
  if (prefix.length < 2) return;
  const res = await api(`/api/trace?${new URLSearchParams({ prefix })}`);
  if (!res.ok) return;
  const { serials } = await res.json();
  document.getElementById("trace-suggest").replaceChildren(...serials.map((s) => new Option(s)));
}

registerPage("trace", {
  enter(params) {
    const serial = (params.get("serial") || "").trim();
    const input = document.getElementById("trace-serial");
    if (serial && serial !== traceState.serial) {
      input.value = serial;
      runTrace(serial);
    } else {
      renderTrace();
    }
    input.focus();
  },
  render: renderTrace,
});

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("trace-serial");
  document.getElementById("trace-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const serial = input.value.trim();
    if (!serial) return;
    if (pageRoute().params.get("serial") === serial) runTrace(serial);
    else goPage("trace", { serial });
  });
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => suggestSerials().catch((err) => console.warn(err)), 250);
  });
});

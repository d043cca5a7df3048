// Overview: alerts per day and type (stacked bars), camera uptime and recording coverage
// (horizontal bars), drawn as plain SVG: the page works with no internet and no build step.
"use strict";

Object.assign(I18N["zh-CN"], {
  overview_title: "运行概览",
  ov_days: (n) => `近 ${n} 天`,
  ov_range: (from, to, tz) => `${from} 至 ${to}（${tz}）`,
  ov_alerts_per_day: "每日告警（按类型）",
  ov_uptime: "摄像头在线率",
  ov_uptime_note:
    "离线时间根据“摄像头离线 / 恢复”告警推算（系统未保存健康历史）；服务未运行（录像索引中的停机缺口）无人监控，单独显示，不计为在线。每台摄像头自首次受监控起计算。",
  ov_uptime_note_norec: "根据“摄像头离线 / 恢复”告警推算（系统未保存健康历史）；未启用录像，无法得知服务未运行的时间，这段时间计为在线。",
  ov_up: "在线",
  ov_down: "离线",
  ov_unwatched: "服务未运行",
  ov_unwatched_for: (d) => `服务未运行 ${d}`,
  ov_since: (date) => `自 ${date} 起`,
  ov_minutes: (n) => `${n} 分钟`,
  ov_hours: (n) => `${n} 小时`,
  ov_coverage: "录像覆盖率",
  ov_coverage_note: "已录制时长 / 统计时段；服务未运行或录像中断的时间计为缺口。",
  ov_no_recording: "未启用录像",
  ov_kpi_total: "告警总数",
  ov_kpi_uptime: "平均在线率",
  ov_kpi_coverage: "平均录像覆盖率",
  ov_outages: (n) => `${n} 次离线`,
  ov_gaps: (n) => `${n} 处缺口`,
  ov_loading: "加载中…",
  ov_failed: (status) => `概览加载失败（${status}）。`,
  ov_no_alerts: "该时段内没有告警",
  camera_tamper: "摄像头遮挡",
});
Object.assign(I18N.en, {
  overview_title: "Overview",
  ov_days: (n) => `Last ${n} days`,
  ov_range: (from, to, tz) => `${from} to ${to} (${tz})`,
  ov_alerts_per_day: "Alerts per day, by type",
  ov_uptime: "Camera uptime",
  ov_uptime_note:
    "Offline time is derived from camera offline / back online alerts (no health history is stored); time the service was not running (stops in the recording index) was not watched: it is shown apart and not counted as up. Each camera counts from when it was first watched.",
  ov_uptime_note_norec:
    "Derived from camera offline / back online alerts (no health history is stored); recording is disabled, so time the service was not running cannot be told and counts as up.",
  ov_up: "Up",
  ov_down: "Offline",
  ov_unwatched: "Service not running",
  ov_unwatched_for: (d) => `not running ${d}`,
  ov_since: (date) => `since ${date}`,
  ov_minutes: (n) => `${n} min`,
  ov_hours: (n) => `${n} h`,
  ov_coverage: "Recording coverage",
  ov_coverage_note: "Recorded time over the period; time the service was down or recording failed counts as a gap.",
  ov_no_recording: "Recording disabled",
  ov_kpi_total: "Alerts",
  ov_kpi_uptime: "Mean uptime",
  ov_kpi_coverage: "Mean recording coverage",
  ov_outages: (n) => `${n} outage${n === 1 ? "" : "s"}`,
  ov_gaps: (n) => `${n} gap${n === 1 ? "" : "s"}`,
  ov_loading: "Loading…",
  ov_failed: (status) => `The overview could not be loaded (${status}).`,
  ov_no_alerts: "No alerts in this period",
  camera_tamper: "Camera tampered",
});

const TYPE_COLORS = {
  unscanned_departure: "#f5a623",
  unauthorized_entry: "#ff4d4f",
  camera_tamper: "#e05fd0",
  camera_offline: "#b583ff",
  camera_online: "#2ecc71",
};
// The parts of an uptime bar after the time up (coloured by how good the uptime is).
const UPTIME_PARTS = {
  down: "#b583ff", // as the camera_offline alerts it comes from
  unwatched: "#8a97a8", // grey: nobody watched, neither up nor down
};
const overviewState = { days: 7, data: null, error: null };
let hbarClips = 0; // ids of the clip paths that round stacked bars

async function loadOverview() {
  overviewState.error = null;
  renderOverview();
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    const res = await api(`/api/overview?${new URLSearchParams({ days: overviewState.days, tz })}`);
    if (!res.ok) throw new Error(String(res.status));
    overviewState.data = await res.json();
  } catch (err) {
    console.warn(err);
    overviewState.error = t("ov_failed", err.message);
  }
  renderOverview();
}

function percent(x) {
  return `${(x * 100).toFixed(x >= 0.9995 || x === 0 ? 0 : 1)}%`;
}

function renderOverview() {
  for (const b of document.querySelectorAll("#overview-days button")) {
    b.textContent = t("ov_days", Number(b.dataset.days));
    b.classList.toggle("active", Number(b.dataset.days) === overviewState.days);
  }
  const d = overviewState.data;
  const charts = ["ov-alerts", "ov-uptime", "ov-coverage"].map((id) => document.getElementById(id));
  if (overviewState.error || !d) {
    const text = overviewState.error || t("ov_loading");
    for (const c of charts) c.replaceChildren(htmlEl("div", "empty", text));
    return;
  }
  const day = (ts) => new Date(ts * 1000).toLocaleDateString(lang, { year: "numeric", month: "2-digit", day: "2-digit" });
  document.getElementById("overview-range").textContent = t("ov_range", day(d.from_ts), day(d.to_ts), d.timezone);
  renderKpis(d);
  renderLegend(d.types);
  // Drawn at the size they are shown, so text stays at its CSS size whatever the window.
  const width = (el) => Math.max(320, Math.floor(el.clientWidth || 760));
  charts[0].replaceChildren(alertsChart(d, width(charts[0])));
  renderUptimeLegend(d);
  charts[1].replaceChildren(barList(d.uptime.map((u) => uptimeRow(u, d)), width(charts[1])));
  charts[2].replaceChildren(barList(d.coverage.map((c) => ({
    id: c.camera, name: c.name, value: c.coverage, note: c.coverage === null ? t("ov_no_recording") : t("ov_gaps", c.gaps),
  })), width(charts[2])));
}

function duration(s) {
  return s < 3600 ? t("ov_minutes", Math.max(1, Math.round(s / 60))) : t("ov_hours", (s / 3600).toFixed(1));
}

// Up, then offline, then service not running: the three add up to the camera's watched window.
function uptimeRow(u, d) {
  const unwatched = u.unwatched || 0;
  const down = Math.max(0, 1 - u.uptime - unwatched);
  const notes = [t("ov_outages", u.outages)];
  if (u.unwatched_s > 0) notes.push(t("ov_unwatched_for", duration(u.unwatched_s)));
  if (u.since_ts > d.from_ts + 1) {
    const since = new Date(u.since_ts * 1000).toLocaleString(lang, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
    notes.push(t("ov_since", since));
  }
  return {
    id: u.camera, name: u.name, value: u.uptime, note: notes.join(" · "),
    parts: [
      { key: "down", value: down, label: t("ov_down") },
      { key: "unwatched", value: unwatched, label: t("ov_unwatched") },
    ],
  };
}

function renderUptimeLegend(d) {
  const head = document.getElementById("ov-uptime").closest(".card").querySelector(".card-head");
  let legend = document.getElementById("ov-uptime-legend");
  if (!legend) {
    legend = htmlEl("div", "legend");
    legend.id = "ov-uptime-legend";
    head.append(legend);
  }
  const recording = d.coverage.some((c) => c.coverage !== null);
  const keys = recording ? ["down", "unwatched"] : ["down"];
  legend.replaceChildren(...keys.map((key) => {
    const span = htmlEl("span", "legend-item");
    span.dataset.part = key;
    const swatch = htmlEl("span", "legend-key");
    swatch.style.background = UPTIME_PARTS[key];
    span.append(swatch, document.createTextNode(t(`ov_${key}`)));
    return span;
  }));
  const note = document.getElementById("ov-uptime").parentElement.querySelector("p[data-i18n]");
  note.dataset.i18n = recording ? "ov_uptime_note" : "ov_uptime_note_norec";
  note.textContent = t(note.dataset.i18n);
}

function renderKpis(d) {
  const total = d.days.reduce((n, day) => n + Object.values(day.counts).reduce((a, b) => a + b, 0), 0);
  const byType = (type) => d.days.reduce((n, day) => n + (day.counts[type] || 0), 0);
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  const uptime = mean(d.uptime.map((u) => u.uptime));
  const coverage = mean(d.coverage.filter((c) => c.coverage !== null).map((c) => c.coverage));
  const kpis = [
    ["total", t("ov_kpi_total"), String(total)],
    ["unscanned_departure", t("unscanned_departure"), String(byType("unscanned_departure"))],
    ["unauthorized_entry", t("unauthorized_entry"), String(byType("unauthorized_entry"))],
    ["uptime", t("ov_kpi_uptime"), uptime === null ? "—" : percent(uptime)],
    ["coverage", t("ov_kpi_coverage"), coverage === null ? "—" : percent(coverage)],
  ];
  document.getElementById("overview-kpis").replaceChildren(...kpis.map(([key, label, value]) => {
    const div = htmlEl("div", "kpi");
    div.dataset.kpi = key;
    div.append(htmlEl("div", "kpi-value", value), htmlEl("div", "kpi-label", label));
    return div;
  }));
}

function renderLegend(types) {
  document.getElementById("ov-legend").replaceChildren(...types.map((type) => {
    const span = htmlEl("span", "legend-item");
    const key = htmlEl("span", "legend-key");
    key.style.background = TYPE_COLORS[type] || "#7d8a99";
    span.append(key, document.createTextNode(t(type)));
    return span;
  }));
}

// Stacked bars, one per day, with a value axis of round steps and a label on each day.
function alertsChart(d, W) {
  const H = 280, left = 36, right = 8, top = 18, bottom = 30;
  const totals = d.days.map((day) => Object.values(day.counts).reduce((a, b) => a + b, 0));
  const max = Math.max(...totals, 0);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "bar-chart", role: "img", "aria-label": t("ov_alerts_per_day") });
  const step = niceStep(max);
  const top_ = Math.max(step, Math.ceil(max / step) * step);
  const y = (v) => top + (H - top - bottom) * (1 - v / top_);
  for (let v = 0; v <= top_; v += step) {
    svg.append(svgEl("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: v ? "grid" : "axis" }));
    svg.append(svgEl("text", { x: left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, String(v)));
  }
  const slot = (W - left - right) / d.days.length;
  const bar = Math.min(48, slot * 0.62);
  const labelEvery = Math.ceil(d.days.length / 12);
  d.days.forEach((day, i) => {
    const x = left + slot * i + (slot - bar) / 2;
    let acc = 0;
    const g = svgEl("g", { class: "day", "data-date": day.date, "data-total": String(totals[i]) });
    for (const type of d.types) {
      const n = day.counts[type] || 0;
      if (!n) continue;
      const rect = svgEl("rect", {
        x, width: bar, y: y(acc + n), height: y(acc) - y(acc + n), fill: TYPE_COLORS[type] || "#7d8a99",
        class: "seg-rect", "data-type": type, rx: 2,
      });
      rect.append(svgEl("title", {}, `${day.date} · ${t(type)}: ${n}`));
      g.append(rect);
      acc += n;
    }
    if (totals[i]) {
      g.append(svgEl("text", { x: x + bar / 2, y: y(acc) - 4, class: "bar-total", "text-anchor": "middle" }, String(totals[i])));
    }
    if (i % labelEvery === 0 || i === d.days.length - 1) {
      const [, m, dd] = day.date.split("-");
      g.append(svgEl("text", { x: x + bar / 2, y: H - bottom + 16, class: "tick", "text-anchor": "middle" }, `${m}-${dd}`));
    }
    svg.append(g);
  });
  if (!max) {
    svg.append(svgEl("text", { x: (W + left) / 2, y: H / 2, class: "chart-empty", "text-anchor": "middle" }, t("ov_no_alerts")));
  }
  return svg;
}

function niceStep(max) {
  if (max <= 5) return 1;
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
}

// One horizontal bar per camera: value 0-1 (null: not applicable), coloured by how good it is;
// `parts` (fractions, keys of UPTIME_PARTS) are stacked after it in the same track.
function barList(rows, W) {
  const rowH = 40, labelW = 140, valueW = 56;
  const H = Math.max(rowH * rows.length, rowH);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "hbar-chart", role: "img" });
  const width = W - labelW - valueW - 8;
  rows.forEach((r, i) => {
    const y = i * rowH;
    const g = svgEl("g", { class: "hbar", "data-camera": r.id });
    g.append(svgEl("text", { x: 0, y: y + 16, class: "hbar-label" }, r.name));
    g.append(svgEl("text", { x: 0, y: y + 31, class: "hbar-note" }, r.note));
    g.append(svgEl("rect", { x: labelW, y: y + 10, width, height: 12, rx: 6, class: "hbar-track" }));
    if (r.value !== null && r.parts) {
      const id = `hbar-clip-${++hbarClips}`;
      const clip = svgEl("clipPath", { id });
      clip.append(svgEl("rect", { x: labelW, y: y + 10, width, height: 12, rx: 6 }));
      const bar = svgEl("g", { "clip-path": `url(#${id})` });
      const level = r.value >= 0.99 ? "good" : r.value >= 0.9 ? "fair" : "poor";
      const fill = svgEl("rect", {
        x: labelW, y: y + 10, width: r.value * width, height: 12, class: `hbar-fill ${level}`, "data-value": String(r.value),
      });
      fill.append(svgEl("title", {}, `${r.name}: ${t("ov_up")} ${percent(r.value)}`));
      bar.append(fill);
      let x = labelW + r.value * width;
      for (const p of r.parts) {
        if (!(p.value > 0)) continue;
        const w = Math.max(p.value * width, 2); // a short stop still shows
        const part = svgEl("rect", {
          x: Math.min(x, labelW + width - w), y: y + 10, width: w, height: 12, fill: UPTIME_PARTS[p.key],
          class: "hbar-part", "data-part": p.key, "data-value": String(p.value),
        });
        part.append(svgEl("title", {}, `${r.name}: ${p.label} ${percent(p.value)}`));
        bar.append(part);
        x += p.value * width;
      }
      g.append(clip, bar);
    } else if (r.value !== null) {
      const level = r.value >= 0.99 ? "good" : r.value >= 0.9 ? "fair" : "poor";
      const fill = svgEl("rect", {
        x: labelW, y: y + 10, width: Math.max(r.value * width, r.value > 0 ? 3 : 0), height: 12, rx: 6,
        class: `hbar-fill ${level}`, "data-value": String(r.value),
      });
      fill.append(svgEl("title", {}, `${r.name}: ${percent(r.value)}`));
      g.append(fill);
    }
    g.append(svgEl("text", { x: W, y: y + 21, class: "hbar-value", "text-anchor": "end" }, r.value === null ? "—" : percent(r.value)));
    svg.append(g);
  });
  return svg;
}

registerPage("overview", {
  enter(params) {
    const days = Number(params.get("days"));
    if ([7, 30].includes(days)) overviewState.days = days;
    loadOverview();
  },
  render: renderOverview,
});

document.addEventListener("DOMContentLoaded", () => {
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (pageRoute().name === "overview") renderOverview(); }, 150);
  });
  for (const b of document.querySelectorAll("#overview-days button")) {
    b.addEventListener("click", () => goPage("overview", { days: b.dataset.days }));
  }
});

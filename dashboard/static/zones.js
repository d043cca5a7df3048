// Zone editor: station and restricted-zone polygons drawn on the camera's live picture.
// Click to add points while drawing, drag a corner to move it, drag an edge's midpoint to add a
// corner, double-click a corner to remove it. Saving sends every zone of the camera to the server,
// which validates them with the site file's own models, writes the site file and applies them.
"use strict";

Object.assign(I18N["zh-CN"], {
  zones_title: "区域编辑",
  zones_file: (f) => `保存到站点文件 ${f}，保存后立即生效，无需重启。`,
  zones_readonly_file: "本站点没有站点文件，区域只能查看。",
  zones_admin_only: "只有管理员可以编辑区域；当前为只读。",
  zones_refresh: "刷新画面",
  zones_add_restricted: "+ 禁区",
  zones_add_station: "+ 工位",
  zones_save: "保存并应用",
  zones_revert: "放弃修改",
  zones_saved: (time) => `已保存并生效（${time}）。`,
  zones_unsaved: "有未保存的修改。",
  zones_saving: "保存中…",
  zones_failed: (status) => `保存失败（${status}）。`,
  zones_none: "该摄像头还没有区域。",
  zones_no_frame: "摄像头暂无画面，可在空白画布上绘制。",
  zones_hint_draw: "在画面上单击添加顶点，至少 3 个；完成后点击“完成绘制”或按回车。",
  zones_hint_edit: "拖动顶点移动；拖动边的中点增加顶点；双击顶点删除。",
  zones_hint_pick: "单击区域以选中编辑，或新增区域。",
  zone_id: "区域 ID",
  zone_name: "名称",
  zone_kind: "类型",
  zone_dwell: "停留阈值（秒）",
  zone_finish: "完成绘制",
  zone_delete: "删除区域",
  kind_restricted: "禁区",
  kind_station: "工位",
  zone_points: (n) => `${n} 个顶点`,
});
Object.assign(I18N.en, {
  zones_title: "Zone editor",
  zones_file: (f) => `Saved to the site file ${f} and applied at once, without a restart.`,
  zones_readonly_file: "This site has no site file: zones are read-only.",
  zones_admin_only: "Only an administrator edits zones; this view is read-only.",
  zones_refresh: "Refresh picture",
  zones_add_restricted: "+ Restricted zone",
  zones_add_station: "+ Station",
  zones_save: "Save and apply",
  zones_revert: "Discard changes",
  zones_saved: (time) => `Saved and applied (${time}).`,
  zones_unsaved: "Unsaved changes.",
  zones_saving: "Saving…",
  zones_failed: (status) => `Saving failed (${status}).`,
  zones_none: "This camera has no zones yet.",
  zones_no_frame: "No picture from this camera yet; you can draw on the blank canvas.",
  zones_hint_draw: "Click on the picture to add corners (3 at least), then Finish drawing or press Enter.",
  zones_hint_edit: "Drag a corner to move it; drag an edge's midpoint to add one; double-click a corner to remove it.",
  zones_hint_pick: "Click a zone to edit it, or add one.",
  zone_id: "Zone id",
  zone_name: "Name",
  zone_kind: "Kind",
  zone_dwell: "Dwell (s)",
  zone_finish: "Finish drawing",
  zone_delete: "Delete zone",
  kind_restricted: "Restricted",
  kind_station: "Station",
  zone_points: (n) => `${n} corners`,
});

const zed = {
  info: null, // GET /api/zones
  camera: null,
  zones: [], // working copies of the camera's zones
  selected: -1,
  drawing: false,
  dirty: false,
  size: { w: 768, h: 576 },
  drag: null, // { zone, vertex }
  status: "",
  errors: [],
};

function canEditZones() {
  return Boolean(zed.info && zed.info.editable && me && me.role === "admin");
}

async function loadZones(keepCamera) {
  const res = await api("/api/zones");
  if (!res.ok) throw new Error(`GET /api/zones: ${res.status}`);
  zed.info = await res.json();
  const select = document.getElementById("zones-camera");
  select.replaceChildren(...zed.info.cameras.map((c) => new Option(`${c.name} (${c.id})`, c.id)));
  if (!keepCamera || !zed.info.cameras.some((c) => c.id === zed.camera)) {
    zed.camera = zed.info.cameras.length ? zed.info.cameras[0].id : null;
  }
  select.value = zed.camera;
  resetWorkingZones();
}

function resetWorkingZones() {
  zed.zones = zed.info.zones.filter((z) => z.camera === zed.camera).map((z) => structuredClone(z));
  zed.selected = -1;
  zed.drawing = false;
  zed.dirty = false;
  zed.errors = [];
}

function loadFrame() {
  const img = document.getElementById("zones-frame");
  const status = document.getElementById("zones-frame-status");
  status.textContent = "";
  img.onload = () => {
    zed.size = { w: img.naturalWidth, h: img.naturalHeight };
    img.hidden = false;
    renderZones();
  };
  img.onerror = () => {
    img.hidden = true;
    status.textContent = t("zones_no_frame");
    renderZones();
  };
  img.src = `/api/zones/${encodeURIComponent(zed.camera)}/frame.jpg?at=${Date.now()}`;
}

function markDirty() {
  zed.dirty = true;
  zed.status = "";
  renderZones();
}

function uniqueZoneId(base) {
  const taken = new Set([...zed.info.zones.filter((z) => z.camera !== zed.camera), ...zed.zones].map((z) => z.id));
  let n = 1;
  while (taken.has(`${base}-${n}`)) n += 1;
  return `${base}-${n}`;
}

function addZone(kind) {
  const id = uniqueZoneId(kind === "station" ? "station" : "zone");
  const zone = { id, camera: zed.camera, kind, name: "", polygon: [] };
  if (kind === "station") zone.station = id;
  zed.zones.push(zone);
  zed.selected = zed.zones.length - 1;
  zed.drawing = true;
  markDirty();
}

function finishDrawing() {
  const z = zed.zones[zed.selected];
  if (z && z.polygon.length >= 3) zed.drawing = false;
  renderZones();
}

function deleteZone() {
  if (zed.selected < 0) return;
  zed.zones.splice(zed.selected, 1);
  zed.selected = -1;
  zed.drawing = false;
  markDirty();
}

// The point under the pointer in the frame's pixels, whole and inside the frame.
function framePoint(ev) {
  const svg = document.getElementById("zones-svg");
  const pt = svg.createSVGPoint();
  pt.x = ev.clientX;
  pt.y = ev.clientY;
  const p = pt.matrixTransform(svg.getScreenCTM().inverse());
  const clamp = (v, hi) => Math.min(hi, Math.max(0, Math.round(v)));
  return [clamp(p.x, zed.size.w), clamp(p.y, zed.size.h)];
}

function onCanvasDown(ev) {
  if (!canEditZones() || ev.button !== 0) return;
  const target = ev.target;
  const zone = zed.zones[zed.selected];
  if (zed.drawing && zone) {
    zone.polygon.push(framePoint(ev));
    markDirty();
    return;
  }
  if (target.dataset.vertex !== undefined && zone) {
    zed.drag = { vertex: Number(target.dataset.vertex) };
  } else if (target.dataset.mid !== undefined && zone) {
    const at = Number(target.dataset.mid) + 1;
    zone.polygon.splice(at, 0, framePoint(ev));
    zed.drag = { vertex: at };
    markDirty();
  } else if (target.dataset.zone !== undefined) {
    zed.selected = Number(target.dataset.zone);
    renderZones();
    return;
  } else {
    zed.selected = -1;
    renderZones();
    return;
  }
  document.getElementById("zones-svg").setPointerCapture(ev.pointerId);
  ev.preventDefault();
}

function onCanvasMove(ev) {
  if (!zed.drag) return;
  const zone = zed.zones[zed.selected];
  zone.polygon[zed.drag.vertex] = framePoint(ev);
  zed.dirty = true;
  renderZones();
}

function onCanvasUp() {
  zed.drag = null;
}

function onCanvasDoubleClick(ev) {
  const zone = zed.zones[zed.selected];
  if (!canEditZones() || !zone) return;
  if (ev.target.dataset.vertex !== undefined && zone.polygon.length > 3 && !zed.drawing) {
    zone.polygon.splice(Number(ev.target.dataset.vertex), 1);
    markDirty();
  } else if (zed.drawing) {
    finishDrawing();
  }
}

function renderZones() {
  if (!zed.info) return;
  const editable = canEditZones();
  const file = document.getElementById("zones-file");
  file.textContent = !zed.info.editable ? t("zones_readonly_file")
    : editable ? t("zones_file", zed.info.file) : t("zones_admin_only");
  document.getElementById("zones-tools").hidden = !editable;
  document.querySelector(".zones-actions").hidden = !editable;
  renderCanvas(editable);
  renderZoneList();
  renderZoneForm(editable);
  const zone = zed.zones[zed.selected];
  document.getElementById("zones-hint").textContent = !editable ? ""
    : zed.drawing ? t("zones_hint_draw") : zone ? t("zones_hint_edit") : t("zones_hint_pick");
  document.getElementById("zones-errors").replaceChildren(...zed.errors.map((e) => htmlEl("li", "", e)));
  const status = document.getElementById("zones-status");
  status.textContent = zed.status || (zed.dirty ? t("zones_unsaved") : "");
  status.dataset.kind = zed.dirty ? "dirty" : "saved";
  document.getElementById("zones-save").disabled = !zed.dirty || zed.drawing;
}

function renderCanvas(editable) {
  const { w, h } = zed.size;
  const canvas = document.getElementById("zones-canvas");
  canvas.style.aspectRatio = `${w} / ${h}`;
  const svg = document.getElementById("zones-svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.classList.toggle("drawing", zed.drawing);
  const r = Math.max(w, h) / 110;
  const nodes = [];
  zed.zones.forEach((z, i) => {
    const selected = i === zed.selected;
    const pts = z.polygon.map((p) => p.join(",")).join(" ");
    const shape = z.polygon.length >= 3 || !selected ? "polygon" : "polyline";
    nodes.push(svgEl(shape, {
      points: pts, class: `zone-shape ${z.kind}${selected ? " selected" : ""}`, "data-zone": String(i),
      "data-id": z.id, "vector-effect": "non-scaling-stroke",
    }));
    if (z.polygon.length) {
      const [lx, ly] = z.polygon.reduce(([a, b], [x, y]) => [a + x / z.polygon.length, b + y / z.polygon.length], [0, 0]);
      const label = svgEl("text", { x: lx, y: ly, class: `zone-label ${z.kind}`, "text-anchor": "middle", "font-size": r * 2.2 },
        z.name ? `${z.id} · ${z.name}` : z.id);
      nodes.push(label);
    }
    if (!selected || !editable) return;
    if (!zed.drawing) {
      z.polygon.forEach((p, k) => {
        const q = z.polygon[(k + 1) % z.polygon.length];
        nodes.push(svgEl("circle", {
          cx: (p[0] + q[0]) / 2, cy: (p[1] + q[1]) / 2, r: r * 0.55, class: "mid-handle", "data-mid": String(k),
        }));
      });
    }
    z.polygon.forEach((p, k) => {
      nodes.push(svgEl("circle", { cx: p[0], cy: p[1], r, class: "vertex-handle", "data-vertex": String(k) }));
    });
  });
  svg.replaceChildren(...nodes);
}

function renderZoneList() {
  const list = document.getElementById("zones-list");
  if (!zed.zones.length) {
    list.replaceChildren(htmlEl("li", "zones-empty muted", t("zones_none")));
    return;
  }
  list.replaceChildren(...zed.zones.map((z, i) => {
    const li = htmlEl("li", `zone-item${i === zed.selected ? " selected" : ""}`);
    li.dataset.id = z.id;
    li.dataset.kind = z.kind;
    const swatch = htmlEl("span", `zone-swatch ${z.kind}`);
    const name = htmlEl("span", "zone-item-name", z.name ? `${z.id} · ${z.name}` : z.id);
    const kind = htmlEl("span", "zone-item-kind", `${t(`kind_${z.kind}`)} · ${t("zone_points", z.polygon.length)}`);
    li.append(swatch, name, kind);
    li.addEventListener("click", () => {
      if (zed.drawing) return;
      zed.selected = i;
      renderZones();
    });
    return li;
  }));
}

function renderZoneForm(editable) {
  const form = document.getElementById("zone-form");
  const z = zed.zones[zed.selected];
  form.hidden = !z;
  if (!z) return;
  const kind = document.getElementById("zone-kind");
  kind.replaceChildren(new Option(t("kind_restricted"), "restricted"), new Option(t("kind_station"), "station"));
  const values = { "zone-id": z.id, "zone-name": z.name || "", "zone-station": z.station || "", "zone-dwell": z.dwell_s ?? 1 };
  for (const [id, value] of Object.entries(values)) {
    const input = document.getElementById(id);
    if (document.activeElement !== input) input.value = value;
    input.disabled = !editable;
  }
  kind.value = z.kind;
  kind.disabled = !editable;
  document.getElementById("zone-station-field").hidden = z.kind !== "station";
  document.getElementById("zone-finish").hidden = !(editable && zed.drawing);
  document.getElementById("zone-finish").disabled = z.polygon.length < 3;
  document.getElementById("zone-delete").hidden = !editable;
}

function onZoneField(ev) {
  const z = zed.zones[zed.selected];
  if (!z) return;
  const v = ev.target.value;
  if (ev.target.id === "zone-id") z.id = v.trim();
  if (ev.target.id === "zone-name") z.name = v;
  if (ev.target.id === "zone-station") z.station = v.trim() || null;
  if (ev.target.id === "zone-dwell") z.dwell_s = v === "" ? 1 : Number(v);
  if (ev.target.id === "zone-kind") {
    z.kind = v;
    if (v === "station" && !z.station) z.station = z.id;
    if (v === "restricted") delete z.station;
  }
  markDirty();
}

// A zone as the site file has it; `camera` is the URL's. The server names the bad field.
function zoneBody(z) {
  const { camera, ...rest } = z;
  return rest;
}

async function saveZones() {
  if (!canEditZones() || zed.drawing) return;
  zed.errors = [];
  zed.status = t("zones_saving");
  renderZones();
  const res = await api(`/api/zones/${encodeURIComponent(zed.camera)}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ zones: zed.zones.map(zoneBody) }),
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const detail = body && body.detail;
    zed.errors = Array.isArray(detail) ? detail.map((d) => (typeof d === "string" ? d : `${(d.loc || []).join(".")}: ${d.msg}`))
      : [typeof detail === "string" ? detail : t("zones_failed", res.status)];
    zed.status = "";
    renderZones();
    return;
  }
  zed.info = body;
  const selectedId = zed.zones[zed.selected]?.id;
  resetWorkingZones();
  zed.selected = zed.zones.findIndex((z) => z.id === selectedId);
  zed.status = t("zones_saved", new Date().toLocaleTimeString(lang, { hour12: false }));
  renderZones();
  loadCameras().catch(() => {}); // the live wall's zone list follows
}

registerPage("zones", {
  async enter() {
    try {
      if (!me) await loadMe();
      await loadZones(true);
    } catch (err) {
      console.warn(err);
      return;
    }
    loadFrame();
    renderZones();
  },
  render: renderZones,
});

document.addEventListener("DOMContentLoaded", () => {
  const svg = document.getElementById("zones-svg");
  svg.addEventListener("pointerdown", onCanvasDown);
  svg.addEventListener("pointermove", onCanvasMove);
  svg.addEventListener("pointerup", onCanvasUp);
  svg.addEventListener("pointercancel", onCanvasUp);
  svg.addEventListener("dblclick", onCanvasDoubleClick);
  document.getElementById("zones-camera").addEventListener("change", (ev) => {
    zed.camera = ev.target.value;
    resetWorkingZones();
    loadFrame();
    renderZones();
  });
  document.getElementById("zones-refresh").addEventListener("click", loadFrame);
  document.getElementById("zones-add-restricted").addEventListener("click", () => addZone("restricted"));
  document.getElementById("zones-add-station").addEventListener("click", () => addZone("station"));
  document.getElementById("zone-finish").addEventListener("click", finishDrawing);
  document.getElementById("zone-delete").addEventListener("click", deleteZone);
  document.getElementById("zones-save").addEventListener("click", () => saveZones().catch((err) => console.warn(err)));
  document.getElementById("zones-revert").addEventListener("click", () => {
    resetWorkingZones();
    renderZones();
  });
  for (const id of ["zone-id", "zone-name", "zone-station", "zone-dwell", "zone-kind"]) {
    document.getElementById(id).addEventListener(id === "zone-kind" ? "change" : "input", onZoneField);
  }
  document.addEventListener("keydown", (ev) => {
    if (pageRoute().name !== "zones" || ev.target.matches("input, select, textarea")) return;
    if (ev.key === "Enter" && zed.drawing) finishDrawing();
    if (ev.key === "Delete" && !zed.drawing && zed.selected >= 0 && canEditZones()) deleteZone();
  });
});

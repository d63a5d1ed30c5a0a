/* Device detail: a recent-readings chart drawn as inline SVG from
   GET /devices/{estate}/{device}/readings, refreshed every 5 s; point values follow the feed. */
"use strict";
(function () {
  const { data, t, fmtTime, api, feed } = window.EG;
  const NS = "http://www.w3.org/2000/svg";
  const chart = document.getElementById("chart");
  const pointSelect = document.getElementById("chart-point");
  const minutesSelect = document.getElementById("chart-minutes");
  const info = document.getElementById("chart-info");

  function svg(name, attrs, text) {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function niceRange(lo, hi) {
    if (lo === hi) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  }

  function label(v) {
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  function draw(reply, minutes) {
    chart.textContent = "";
    const samples = reply.samples.filter((s) => typeof s.value === "number" || typeof s.value === "boolean");
    const width = chart.clientWidth || 800;
    const height = chart.clientHeight || 260;
    const m = { l: 56, r: 14, t: 10, b: 24 };
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": reply.point });
    const now = Date.now() / 1000;
    // Less history than the window (the rings start empty at a restart): fit the data, not the window.
    const x0 = Math.max(now - minutes * 60, samples.length ? samples[0].ts - 5 : 0);
    const values = samples.map((s) => Number(s.value));
    const [lo, hi] = values.length ? niceRange(Math.min(...values), Math.max(...values)) : [0, 1];
    const x = (ts) => m.l + ((ts - x0) / (now - x0)) * (width - m.l - m.r);
    const y = (v) => height - m.b - ((v - lo) / (hi - lo)) * (height - m.t - m.b);
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      root.append(svg("line", { class: "gridline", x1: m.l, x2: width - m.r, y1: y(v), y2: y(v) }));
      root.append(svg("text", { class: "tick", x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, label(v)));
    }
    for (let k = 0; k <= 5; k++) {
      const ts = x0 + ((now - x0) * k) / 5;
      const anchor = k === 0 ? "start" : k === 5 ? "end" : "middle";
      root.append(svg("text", { class: "tick", x: x(ts), y: height - 6, "text-anchor": anchor },
        fmtTime(ts, data.estate, false).slice(0, now - x0 < 600 ? 8 : 5)));
    }
    root.append(svg("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: height - m.b }));
    root.append(svg("line", { class: "axis", x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b }));
    if (samples.length) {
      // A step line: a reading holds until the next one (polled values, booleans).
      let d = "";
      samples.forEach((s, k) => {
        const px = x(Math.max(s.ts, x0)).toFixed(1);
        const py = y(Number(s.value)).toFixed(1);
        d += k === 0 ? `M${px},${py}` : `H${px}V${py}`;
      });
      d += `H${x(now).toFixed(1)}`;
      root.append(svg("path", { class: "line", d }));
      const last = samples[samples.length - 1];
      root.append(svg("circle", { class: "dot", cx: x(last.ts), cy: y(Number(last.value)), r: 3 }));
      info.textContent = t("device.latest", { value: label(Number(last.value)), unit: reply.unit || "",
        time: fmtTime(last.ts, data.estate, false), n: samples.length });
    } else {
      info.textContent = t("device.no_samples");
    }
    chart.append(root);
  }

  async function load() {
    const point = pointSelect && pointSelect.value;
    if (!point) return;
    const minutes = Number(minutesSelect.value);
    const params = new URLSearchParams({ point, minutes: String(minutes) });
    const path = `/devices/${encodeURIComponent(data.estate)}/${encodeURIComponent(data.device)}/readings?${params}`;
    try { draw(await api("GET", path), minutes); }
    catch (e) { info.textContent = t("toast.failed", { detail: e.message }); }
  }

  if (pointSelect) pointSelect.addEventListener("change", load);
  minutesSelect.addEventListener("change", load);
  window.addEventListener("resize", load);
  setInterval(load, 5000);
  load();

  feed({
    device(m) {
      if (m.estate !== data.estate || m.device !== data.device || !m.values) return;
      for (const [point, value] of Object.entries(m.values)) {
        const tr = document.querySelector(`#points tr[data-point="${CSS.escape(point)}"]`);
        if (!tr) continue;
        tr.querySelector(".c-val").textContent = typeof value === "number" && !Number.isInteger(value)
          ? String(Number(value.toFixed(2))) : String(value);
        if (m.ts) tr.querySelector(".c-time").textContent = fmtTime(m.ts, data.estate, false);
      }
    },
  });
})();

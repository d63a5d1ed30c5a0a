/* Shared by every console page: catalog, time formatting in the estate's timezone, API calls with the
   CSRF header, the live feed (WebSocket with backoff and resume), clock, logout. No framework. */
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("eg-data").textContent);
  const messages = JSON.parse(document.getElementById("eg-i18n").textContent);
  const locale = data.lang === "en" ? "en-GB" : "zh-CN";

  function t(key, values) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (values) {
      for (const [name, value] of Object.entries(values)) text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function tzOf(estate) {
    const known = data.estates && data.estates[estate];
    if (known) return known.tz;
    if (data.tz) return data.tz;
    const first = Object.values(data.estates || {})[0];
    return first ? first.tz : "Asia/Shanghai";
  }

  const formats = new Map();
  function formatter(tz, withDate) {
    const key = tz + (withDate ? "|d" : "|t");
    if (!formats.has(key)) {
      const opts = { timeZone: tz, hour12: false, hour: "2-digit", minute: "2-digit", second: "2-digit" };
      if (withDate) Object.assign(opts, { year: "numeric", month: "2-digit", day: "2-digit" });
      formats.set(key, new Intl.DateTimeFormat("en-CA", opts));
    }
    return formats.get(key);
  }

  /* "2026-11-23 08:15:02" (or "08:15:02") in the estate's timezone, whatever the browser's zone is. */
  function fmtTime(ts, estate, withDate = true) {
    if (ts === null || ts === undefined) return "";
    const parts = {};
    for (const p of formatter(tzOf(estate), withDate).formatToParts(new Date(ts * 1000))) parts[p.type] = p.value;
    const hour = parts.hour === "24" ? "00" : parts.hour;
    const time = `${hour}:${parts.minute}:${parts.second}`;
    return withDate ? `${parts.year}-${parts.month}-${parts.day} ${time}` : time;
  }

  function fmtAge(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return t("age.seconds", { n: s });
    if (s < 3600) return t("age.minutes", { n: Math.floor(s / 60) });
    if (s < 86400) return t("age.hours", { n: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
    return t("age.days", { n: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
  }

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = cookie("eg_csrf");
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const reply = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (reply.status === 401) {
      location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new ApiError(401, t("error.session"));
    }
    const text = await reply.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = text; }
    if (!reply.ok) {
      let detail = parsed && parsed.detail !== undefined ? parsed.detail : text;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      throw new ApiError(reply.status, detail || String(reply.status));
    }
    return parsed;
  }

  let toastTimer = null;
  function toast(text, bad = false) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.className = "toast" + (bad ? " bad" : "");
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, bad ? 6000 : 2500);
  }

  /* The live feed: {hello, incident, device, resync}. Reconnects with backoff (0.5 s .. 10 s) and resumes
     from the last seq of the same epoch; when it cannot resume (first connect, new epoch, or the
     server says resync) the page refetches over REST. */
  function feed(handlers) {
    const badge = document.getElementById("feed-state");
    let seq = null;
    let epoch = null;
    let delay = 500;
    function show(live) {
      document.body.dataset.feed = live ? "live" : "off";
      if (!badge) return;
      badge.className = "feed-state " + (live ? "live" : "off");
      badge.textContent = t(live ? "feed.live" : "feed.reconnecting");
    }
    function resync() { if (handlers.resync) handlers.resync(); }
    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const query = seq !== null ? `?since=${seq}&epoch=${encodeURIComponent(epoch)}` : "";
      let ws;
      try { ws = new WebSocket(scheme + location.host + "/feed/ws" + query); } catch (e) { retry(); return; }
      ws.onmessage = (event) => {
        let m;
        try { m = JSON.parse(event.data); } catch (e) { return; }
        if (m.type === "hello") {
          const resumed = seq !== null && m.epoch === epoch;
          epoch = m.epoch;
          if (!resumed) { seq = m.seq; resync(); }
          delay = 500;
          show(true);
          return;
        }
        if (typeof m.seq === "number") seq = m.seq;
        if (m.type === "resync") { if (m.epoch !== undefined) epoch = m.epoch; resync(); return; }
        const handler = handlers[m.type];
        if (handler) handler(m);
      };
      // 4403: refused for good (another origin, or the regulator, who reads KPIs but not the feed).
      ws.onclose = (event) => { show(false); if (event.code !== 4403) retry(); };
    }
    function retry() {
      setTimeout(connect, delay + Math.random() * 300);
      delay = Math.min(delay * 2, 10000);
    }
    connect();
  }

  function startClock() {
    const el = document.getElementById("clock");
    if (!el) return;
    const tick = () => { el.textContent = fmtTime(Date.now() / 1000, null); };
    tick();
    setInterval(tick, 1000);
  }

  function bindLogout() {
    const button = document.getElementById("logout");
    if (!button) return;
    button.addEventListener("click", async () => {
      try { await api("POST", "/auth/logout"); } catch (e) { /* the session may be gone already */ }
      location.assign("/console/login");
    });
  }

  window.EG = { data, t, fmtTime, fmtAge, api, ApiError, toast, feed, cookie, tzOf };
  startClock();
  bindLogout();
})();

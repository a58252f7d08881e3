// Keeps the server-rendered figures live over the WebSocket. The page is complete
// without this file: it only replaces text the server already rendered.
"use strict";
(function () {
  const body = document.body;
  const t = JSON.parse(body.dataset.strings);
  const locale = body.dataset.locale;
  const status = document.getElementById("connection");
  const numbers = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  const decimals = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0 });
  const relative = new Intl.RelativeTimeFormat(locale, { numeric: "always" });
  const arrows = { rising: "↗", steady: "→", falling: "↘" };

  // Catalog templates have {name} slots; web/i18n.py fills them the same way.
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (slot, name) {
      return name in values ? values[name] : slot;
    });
  }

  // The same steps as age_unit() in web/i18n.py.
  function ageText(updated) {
    if (!updated) return t.no_data;
    const seconds = (Date.now() - Date.parse(updated)) / 1000;
    if (seconds < 10) return t.just_now;
    if (seconds < 60) return fill(t.updated_ago, { ago: relative.format(-Math.floor(seconds), "second") });
    const minutes = Math.floor(seconds / 60);
    const hours = Math.floor(minutes / 60);
    const ago = minutes < 60 ? relative.format(-minutes, "minute")
      : hours < 48 ? relative.format(-hours, "hour") : relative.format(-Math.floor(hours / 24), "day");
    return fill(t.updated_ago, { ago: ago });
  }

  function part(item, name) { return item.querySelector("." + name); }

  function setText(item, name, text) {
    const element = part(item, name);
    if (element && element.textContent !== text) element.textContent = text;
  }

  function refreshAge(item) {
    const updated = item.dataset.updated;
    setText(item, "age-text", ageText(updated));
    const stale = !updated || (Date.now() - Date.parse(updated)) / 1000 > Number(item.dataset.staleAfter);
    item.classList.toggle("is-stale", stale);
    part(item, "stale-label").hidden = !stale || !updated;
    const hint = document.querySelector(".stale-hint");
    if (hint) hint.hidden = !stale || !updated;
  }

  function temperature(template, value) {
    return value === null ? "" : fill(template, { temp: decimals.format(value) + " °C" });
  }

  // A new camera picture replaces the old one; its URL names it, so caches stay right.
  function showPicture(f) {
    const figure = document.querySelector('.camera[data-facility="' + f.id + '"]');
    if (!figure || !f.snapshot_at || Date.parse(f.snapshot_at) === Date.parse(figure.dataset.taken)) return;
    const taken = new Date(f.snapshot_at);
    const image = figure.querySelector(".camera-image");
    image.src = image.src.split("?")[0] + "?v=" + taken.getTime();
    figure.dataset.taken = f.snapshot_at;
    const clock = new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit", timeZone: figure.dataset.tz });
    setText(figure, "camera-time", fill(t.camera_taken, { time: clock.format(taken) }));
    setText(figure, "camera-people", f.people === null ? "" : fill(t.people_on_camera, { n: numbers.format(f.people) }));
  }

  // Busier or quieter than the typical moment, by the margin the server chose (pages.py).
  function showVersus(item, occupancy) {
    const versus = part(item, "versus");
    if (!versus || item.dataset.typical === undefined) return;
    const typical = Number(item.dataset.typical);
    const margin = Number(item.dataset.margin);
    const word = occupancy === null ? "" : occupancy > typical + margin ? t.usual_busier
      : occupancy < typical - margin ? t.usual_quieter : t.usual_same;
    setText(item, "versus", word);
    versus.hidden = !word;
  }

  function show(f) {
    const item = document.getElementById("f-" + f.id);
    if (!item) return;
    // A place counted only by its camera: the camera's count is the figure (as on the server).
    const cameraOnly = f.occupancy === null && f.people !== null;
    const figure = cameraOnly ? f.people : f.occupancy;
    const occupancy = figure === null ? "–" : numbers.format(figure);
    if (part(item, "occupancy").textContent !== occupancy) {
      item.classList.add("changed");
      setTimeout(function () { item.classList.remove("changed"); }, 1200);
    }
    setText(item, "occupancy", occupancy);
    setText(item, "unit", cameraOnly ? t.people_seen : t.people);
    setText(item, "level-word", f.level ? t["level_" + f.level] : "");
    item.className = item.className.replace(/\blevel-(quiet|moderate|busy|full|none)\b/, "level-" + (f.level || "none"));
    const trend = part(item, "trend");
    trend.hidden = !f.trend;
    setText(item, "arrow", f.trend ? arrows[f.trend] : "");
    setText(item, "trend-word", f.trend ? t["trend_" + f.trend] : "");
    const fillBar = part(item, "bar-fill");
    if (fillBar) fillBar.setAttribute("width", Math.min(100, f.occupancy_pct || 0).toFixed(1));
    if (part(item, "capacity")) {
      part(item, "capacity").hidden = f.occupancy_pct === null;
      setText(item, "pct-text", f.occupancy_pct === null ? "" : fill(t.pct_of_capacity, {
        pct: percent.format(Math.round(f.occupancy_pct) / 100), capacity: numbers.format(f.capacity) }));
      setText(item, "free", f.occupancy === null || !f.capacity ? "" : fill(t.places_free, {
        n: numbers.format(Math.max(0, f.capacity - f.occupancy)) }));
    }
    showVersus(item, f.stale ? null : f.occupancy);
    if (part(item, "open") && f.open_now !== null) setText(item, "open", f.open_now ? t.open_now : t.closed_now);
    setText(item, "ice", temperature(t.ice_temp, f.ice_temp_c));
    setText(item, "air", temperature(t.air_temp, f.air_temp_c));
    setText(item, "people", f.people === null || cameraOnly ? "" : fill(t.people_on_camera, { n: numbers.format(f.people) }));
    const known = f.condition_state === "known" && f.condition_text;
    const quality = known && f.condition_quality ? t["cond_" + f.condition_quality] : "";
    const condition = part(item, "condition");
    if (condition) setText(item, "condition", known ? f.condition_text + (quality ? " · " + quality : "") : condition.dataset.unknown);
    const notice = part(item, "notice");
    if (notice) { notice.textContent = f.notice || ""; notice.hidden = !f.notice; }
    showPicture(f);
    item.dataset.updated = f.updated_at || "";
    item.dataset.staleAfter = f.stale_after_s;
    refreshAge(item);
  }

  function setStatus(text, offline) {
    status.textContent = text;
    status.classList.toggle("is-offline", offline);
  }

  let delay = 1000;
  let socket = null;
  let retry = null;

  function connect() {
    clearTimeout(retry);
    retry = null;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/api/v1/live?lang=" + body.dataset.lang);
    socket.onopen = function () { delay = 1000; setStatus(t.live, false); };
    socket.onmessage = function (event) {
      const message = JSON.parse(event.data);
      if (message.facility) show(message.facility);
    };
    socket.onclose = function () {
      socket = null;
      // Exponential backoff with jitter, so that a restarted hub is not hit by every browser at once.
      const wait = Math.round(delay * (0.75 + Math.random() / 2));
      setStatus(fill(t.offline, { s: Math.max(1, Math.round(wait / 1000)) }), true);
      retry = setTimeout(connect, wait);
      delay = Math.min(delay * 2, 30000);
    };
  }

  function reconnectNow() {
    if (socket === null && retry !== null && document.visibilityState === "visible") connect();
  }

  const items = function () { return document.querySelectorAll(".facility"); };
  items().forEach(refreshAge);
  setInterval(function () { items().forEach(refreshAge); }, 5000);
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", reconnectNow);
  setStatus(t.connecting, false);
  connect();
})();

// Keeps the server-rendered figures live over the WebSocket. The page is complete
// without this file: it only replaces text the server already rendered.
"use strict";
(function () {
  const body = document.body;
  const t = JSON.parse(body.dataset.strings);
  const locale = body.dataset.locale;
  const status = document.getElementById("connection");
  // Made when first used, not while the page loads: the browser's first Intl object
  // costs tens of milliseconds on a slow phone.
  function lazy(make) {
    let made = null;
    return function () { return made || (made = make()); };
  }
  const numbers = lazy(function () { return new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }); });
  const decimals = lazy(function () {
    return new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  });
  const percent = lazy(function () { return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0 }); });
  const relative = lazy(function () { return new Intl.RelativeTimeFormat(locale, { numeric: "always" }); });
  const plurals = lazy(function () { return new Intl.PluralRules(locale); });
  const arrows = { rising: "↗", steady: "→", falling: "↘" };

  // A message with plural forms comes as one form per plural category ({one, other}),
  // by the names Intl.PluralRules gives them (web/i18n.py, client_strings).
  function plural(message, n) {
    return typeof message === "string" ? message : message[plurals().select(n)] || message.other;
  }

  // Catalog templates have {name} slots; web/i18n.py fills them the same way.
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (slot, name) {
      return name in values ? values[name] : slot;
    });
  }

  // The same steps as age_unit() in web/i18n.py; template/nowText: "picture 2 min ago".
  function ageText(updated, template, nowText) {
    template = template || t.updated_ago;
    if (!updated) return t.no_data;
    const seconds = (Date.now() - Date.parse(updated)) / 1000;
    if (seconds < 10) return nowText || t.just_now;
    if (seconds < 60) return fill(template, { ago: relative().format(-Math.floor(seconds), "second") });
    const minutes = Math.floor(seconds / 60);
    const hours = Math.floor(minutes / 60);
    const ago = minutes < 60 ? relative().format(-minutes, "minute")
      : hours < 48 ? relative().format(-hours, "hour") : relative().format(-Math.floor(hours / 24), "day");
    return fill(template, { ago: ago });
  }

  function part(item, name) { return item.querySelector("." + name); }

  // Writes only what changed: on connect the hub sends every facility, mostly as shown.
  function setText(item, name, text) {
    const element = part(item, name);
    if (element && element.textContent !== text) element.textContent = text;
  }

  function setHidden(element, hidden) {
    if (element && element.hidden !== hidden) element.hidden = hidden;
  }

  function setData(element, name, value) {
    if (element.dataset[name] !== value) element.dataset[name] = value;
  }

  function refreshAge(item) {
    const updated = item.dataset.updated;
    setText(item, "age-text", ageText(updated));
    const stale = !updated || (Date.now() - Date.parse(updated)) / 1000 > Number(item.dataset.staleAfter);
    item.classList.toggle("is-stale", stale);
    setHidden(part(item, "stale-label"), !stale || !updated);
    setHidden(document.querySelector(".stale-hint"), !stale || !updated);
  }

  function temperature(template, value) {
    return value === null ? "" : fill(template, { temp: decimals().format(value) + " °C" });
  }

  // The camera's lines, and its picture while current (as CameraView in web/pages.py):
  // a camera that failed closed, or a picture older than the stale threshold, shows why
  // instead. A new picture has a new URL (its version), so caches stay right.
  function showCamera(item, f) {
    const lines = part(item, "camera-lines");
    if (!lines) return;
    setText(item, "spots", f.spots && f.spots_in_use !== null
      ? fill(plural(t.spots_in_use, f.spots), { n: numbers().format(f.spots_in_use), total: numbers().format(f.spots) }) : "");
    setText(item, "waiting", f.people_waiting === null ? "" : fill(t.people_waiting, { n: numbers().format(f.people_waiting) }));
    const failed = f.camera_status !== null && f.camera_status !== "ok";
    document.querySelectorAll('.camera[data-facility="' + f.id + '"]').forEach(function (figure) {
      figure.dataset.status = f.camera_status || "";
      if (f.snapshot_url && f.snapshot_at && !failed && Date.parse(f.snapshot_at) !== Date.parse(figure.dataset.taken)) {
        figure.dataset.taken = f.snapshot_at;
        figure.dataset.version = f.snapshot_url.split("v=")[1];
        figure.dataset.alt = pictureAlt(figure, f);
        let image = figure.querySelector(".camera-image");
        if (!image) {
          image = document.createElement("img");
          image.className = "camera-image";
          figure.insertBefore(image, figure.firstChild);
        }
        const version = "v=" + figure.dataset.version;
        image.src = figure.dataset.size === "thumb" ? f.snapshot_url + "&w=240"
          : image.src ? image.src.replace(/v=\d+/, version) : f.snapshot_url + "&w=480";
        if (image.srcset) image.srcset = image.srcset.replace(/v=\d+/g, version);
        image.alt = figure.dataset.alt;
      }
      refreshPicture(figure);
    });
  }

  function pictureAlt(figure, f) {
    const clock = new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit", timeZone: figure.dataset.tz });
    const values = { time: clock.format(new Date(f.snapshot_at)), people: f.people === null ? "–" : numbers().format(f.people) };
    if (!f.spots || f.spots_in_use === null) return fill(t.camera_alt_people, values);
    values.used = numbers().format(f.spots_in_use);
    values.total = numbers().format(f.spots);
    return fill(t.camera_alt_spots, values);
  }

  // Shown only while current; otherwise the note says why (never an old picture as new).
  function refreshPicture(figure) {
    const item = document.getElementById("f-" + figure.dataset.facility);
    const status = figure.dataset.status || "";
    const taken = figure.dataset.taken;
    const age = taken ? (Date.now() - Date.parse(taken)) / 1000 : Infinity;
    const failed = status !== "" && status !== "ok";
    const current = Boolean(figure.querySelector(".camera-image")) && !failed && age <= Number(item.dataset.staleAfter);
    figure.hidden = !current;
    setText(figure, "camera-age", taken ? ageText(taken, t.picture_ago, t.picture_just_now) : "");
    let note = "";
    if (failed) note = fill(t.camera_paused_short, { reason: t["camera_" + status] || t.camera_error });
    else if (taken && !current) {
      const clock = new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit", timeZone: figure.dataset.tz });
      note = fill(t.camera_not_current, { time: clock.format(new Date(taken)) });
    }
    document.querySelectorAll(".camera-note").forEach(function (element) {
      if (!element.closest(".facility") || element.closest(".facility") === item) {
        element.textContent = note;
        element.hidden = !note;
      }
    });
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
    setHidden(versus, !word);
  }

  function show(f) {
    const item = document.getElementById("f-" + f.id);
    if (!item) return;
    // A place counted only by its camera: the camera's count is the figure (as on the server).
    const cameraOnly = f.occupancy === null && f.people !== null;
    const figure = cameraOnly ? f.people : f.occupancy;
    const occupancy = figure === null ? "–" : numbers().format(figure);
    if (part(item, "occupancy").textContent !== occupancy) {
      item.classList.add("changed");
      setTimeout(function () { item.classList.remove("changed"); }, 1200);
    }
    setText(item, "occupancy", occupancy);
    const count = figure === null ? 0 : Math.round(figure);
    setText(item, "unit", plural(cameraOnly ? t.people_seen : t.people, count));
    setText(item, "level-word", f.level ? t["level_" + f.level] : "");
    const classes = item.className.replace(/\blevel-(quiet|moderate|busy|full|none)\b/, "level-" + (f.level || "none"));
    if (item.className !== classes) item.className = classes;
    setHidden(part(item, "trend"), !f.trend);
    setText(item, "arrow", f.trend ? arrows[f.trend] : "");
    setText(item, "trend-word", f.trend ? t["trend_" + f.trend] : "");
    const fillBar = part(item, "bar-fill");
    const width = Math.min(100, f.occupancy_pct || 0).toFixed(1);
    if (fillBar && fillBar.getAttribute("width") !== width) fillBar.setAttribute("width", width);
    // Counted by a camera that watches spots: the camera's line says it in words.
    const bySpots = f.occupancy === null && Boolean(f.spots);
    if (part(item, "capacity")) {
      setHidden(part(item, "capacity"), f.occupancy_pct === null);
      setText(item, "pct-text", f.occupancy_pct === null || bySpots ? "" : fill(t.pct_of_capacity, {
        pct: percent().format(Math.round(f.occupancy_pct) / 100), capacity: numbers().format(f.capacity) }));
      const free = f.occupancy === null || !f.capacity ? null : Math.max(0, f.capacity - f.occupancy);
      setText(item, "free", free === null ? "" : fill(plural(t.places_free, free), { n: numbers().format(free) }));
    }
    showVersus(item, f.stale ? null : f.occupancy);
    if (part(item, "open") && f.open_now !== null) setText(item, "open", f.open_now ? t.open_now : t.closed_now);
    setText(item, "ice", temperature(t.ice_temp, f.ice_temp_c));
    setText(item, "air", temperature(t.air_temp, f.air_temp_c));
    setText(item, "people", f.people === null || cameraOnly ? ""
      : fill(plural(t.people_on_camera, f.people), { n: numbers().format(f.people) }));
    const known = f.condition_state === "known" && f.condition_text;
    const quality = known && f.condition_quality ? t["cond_" + f.condition_quality] : "";
    const condition = part(item, "condition");
    if (condition) setText(item, "condition", known ? f.condition_text + (quality ? " · " + quality : "") : condition.dataset.unknown);
    setText(item, "notice", f.notice || "");
    setHidden(part(item, "notice"), !f.notice);
    setData(item, "staleAfter", String(f.stale_after_s));
    showCamera(item, f);
    setData(item, "updated", f.updated_at || "");
    refreshAge(item);
  }

  // Work in slices of a few milliseconds, so that a city's list (every facility arrives
  // on connect) never holds up a tap; of several states of one facility only the newest
  // is shown.
  const work = [];
  let working = false;
  const latest = new Map();

  function soon(task) {
    work.push(task);
    if (!working) { working = true; setTimeout(runWork, 0); }
  }

  function runWork() {
    const until = performance.now() + 8;
    while (work.length && performance.now() < until) work.shift()();
    if (work.length) setTimeout(runWork, 0); else working = false;
  }

  function receive(f) {
    if (!latest.has(f.id)) soon(function () { const newest = latest.get(f.id); latest.delete(f.id); show(newest); });
    latest.set(f.id, f);
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
      if (message.facility) receive(message.facility);
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
  const pictures = function () { return document.querySelectorAll(".camera[data-facility]"); };
  function refreshAll() {
    items().forEach(function (item) { soon(function () { refreshAge(item); }); });
    pictures().forEach(function (figure) { soon(function () { refreshPicture(figure); }); });
  }

  refreshAll();
  setInterval(refreshAll, 5000);
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", reconnectNow);
  setStatus(t.connecting, false);
  connect();
})();

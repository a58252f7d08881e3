// The crew page offline: every tap is stored on the phone first, with the time of
// the work, and sent when there is a connection. The page works without this file
// (plain form posts); with it, a lost connection loses nothing.
"use strict";
(function () {
  const body = document.body;
  const lang = body.dataset.lang;
  const crew = body.dataset.crew;
  const t = JSON.parse(body.dataset.strings);
  const queueKey = "ruuhka-crew-queue:" + crew;
  const nearestKey = "ruuhka-crew-nearest";
  const CACHE = "ruuhka-crew-v1"; // as in crew-sw.js
  const statusBox = document.getElementById("crew-status");
  const queueBox = document.getElementById("crew-queue");
  const undoButton = document.getElementById("crew-undo");
  const csrf = body.dataset.csrf;
  let flushing = false;
  let sending = null; // client_id of the entry on its way to the hub
  let lastEntry = null; // {client_id, id?} of the newest tap, for undo
  let undoWhenStored = null; // an undo asked for while its entry was on its way

  const plurals = new Intl.PluralRules(lang);

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (m, key) { return key in values ? values[key] : m; });
  }

  // A message with plural forms, {one, other}: the form for n, as in static/live.js.
  function plural(message, n) {
    return typeof message === "string" ? message : message[plurals.select(n)] || message.other;
  }

  function load() {
    try { return JSON.parse(localStorage.getItem(queueKey) || "[]"); } catch (e) { return []; }
  }

  function save(queue) {
    localStorage.setItem(queueKey, JSON.stringify(queue));
    showQueue();
  }

  function say(text) { statusBox.textContent = text; }

  function showQueue() {
    const count = load().length;
    queueBox.hidden = count === 0;
    queueBox.textContent = count === 0 ? "" :
      (navigator.onLine ? "" : t.crew_offline + " ") + fill(plural(t.crew_queued, count), { count: count });
  }

  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function detailText(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map(function (d) { return d.msg; }).join("; ");
    return "";
  }

  function workTime(form) {
    const at = form.elements.at.value;
    if (at) {
      const parsed = new Date(at); // datetime-local: the phone's own time zone
      if (!isNaN(parsed.getTime())) return parsed;
    }
    return new Date(Date.now() - Number(form.elements.ago.value || 0) * 60000);
  }

  function entryFrom(form, action, label) {
    const notice = {};
    ["fi", "sv", "en"].forEach(function (code) {
      const text = form.elements["notice_" + code].value.trim();
      if (text) notice[code] = text;
    });
    const entry = {
      client_id: randomId(),
      facility: form.elements.facility.value,
      action: action,
      performed_at: workTime(form).toISOString(),
      what: label + " · " + form.dataset.name
    };
    if (form.elements.quality.value) entry.quality = form.elements.quality.value;
    if (Object.keys(notice).length) entry.notice = notice;
    return entry;
  }

  function resetForm(form, action) {
    form.elements.ago.value = "0";
    form.elements.at.value = "";
    form.elements.quality.value = "";
    if (action === "notice") {
      ["fi", "sv", "en"].forEach(function (code) { form.elements["notice_" + code].value = ""; });
    }
  }

  // "Recent entries" as the server renders them (crew.html), from the hub's answer.
  function showRecent(list, entries) {
    if (!list) return;
    const items = entries.map(function (e) {
      const li = document.createElement("li");
      const parts = [e.text];
      if (e.quality) parts.push(t["crew_quality_" + e.quality]);
      parts.push(e.logged_by);
      if (e.corrected) parts.push(t.crew_corrected);
      li.textContent = parts.join(" · ");
      return li;
    });
    if (!items.length) {
      const none = document.createElement("li");
      none.className = "crew-none";
      none.textContent = t.crew_nothing_yet;
      items.push(none);
    }
    list.replaceChildren.apply(list, items);
  }

  async function refresh() {
    try {
      const response = await fetch("/api/v1/crew/facilities?lang=" + lang, { credentials: "same-origin" });
      if (!response.ok) return;
      (await response.json()).forEach(function (f) {
        const item = document.getElementById("f-" + f.id);
        if (!item) return;
        item.querySelector(".crew-latest").textContent = f.condition_text || t.crew_no_condition;
        showRecent(item.querySelector(".crew-recent"), f.recent);
      });
    } catch (e) { /* offline again: the page keeps what it shows */ }
  }

  async function send(entry) {
    const payload = Object.assign({}, entry);
    delete payload.what;
    return fetch("/api/v1/crew/entries?lang=" + lang, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(payload)
    });
  }

  function drop(clientId) {
    save(load().filter(function (e) { return e.client_id !== clientId; }));
  }

  async function flush() {
    if (flushing) return;
    showQueue();
    if (!navigator.onLine || load().length === 0) return;
    flushing = true;
    let sent = 0;
    try {
      for (const entry of load()) {
        let response;
        sending = entry.client_id;
        try {
          response = await send(entry);
        } catch (e) {
          break; // no connection after all: try again later
        } finally {
          sending = null;
        }
        if (response.ok) {
          const stored = await response.json();
          drop(entry.client_id);
          sent += 1;
          if (lastEntry && lastEntry.client_id === entry.client_id) lastEntry.id = stored.id;
          if (undoWhenStored && undoWhenStored.client_id === entry.client_id) {
            undoWhenStored = null;
            await withdraw(stored.id);
          } else {
            say(fill(t.crew_sent, { text: stored.text + " · " + entry.what.split(" · ").pop() }));
          }
        } else if (response.status === 401) {
          say(fill(plural(t.crew_session_ended, load().length), { count: load().length }));
          break;
        } else if (response.status >= 500 || response.status === 429) {
          break;
        } else {
          let reason = "";
          try { reason = detailText((await response.json()).detail); } catch (e) { reason = response.statusText; }
          if (response.status === 403 && /CSRF/.test(reason)) {
            say(fill(plural(t.crew_session_ended, load().length), { count: load().length }));
            break;
          }
          drop(entry.client_id);
          say(fill(t.crew_rejected, { what: entry.what, reason: reason }));
        }
      }
    } finally {
      flushing = false;
      showQueue();
    }
    if (sent) refresh();
  }

  async function undo() {
    const last = lastEntry;
    undoButton.hidden = true;
    lastEntry = null;
    if (!last) return;
    if (last.id !== undefined) {
      await withdraw(last.id);
    } else if (last.client_id === sending) {
      undoWhenStored = last; // flush() takes it back once the hub has it
    } else {
      drop(last.client_id); // never left the phone
      say(t.crew_undone);
    }
  }

  async function withdraw(entryId) {
    try {
      const response = await fetch("/api/v1/crew/entries/" + entryId + "?lang=" + lang, {
        method: "PATCH",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ withdrawn: true, reason: "undo" })
      });
      say(response.ok ? t.crew_undone : fill(t.crew_rejected, { what: t.crew_undo, reason: response.statusText }));
      if (response.ok) refresh();
    } catch (e) {
      say(fill(t.crew_rejected, { what: t.crew_undo, reason: t.crew_offline }));
    }
  }

  document.querySelectorAll("form.crew-log").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const button = event.submitter;
      if (!button || !button.value) return;
      const entry = entryFrom(form, button.value, (button.querySelector(".crew-label") || button).textContent.trim());
      if (entry.action === "notice" && !entry.notice) {
        say(t.crew_notice_empty);
        return;
      }
      const queue = load();
      queue.push(entry);
      save(queue);
      lastEntry = { client_id: entry.client_id };
      undoButton.hidden = false;
      say(fill(t.crew_kept, { what: entry.what }));
      resetForm(form, entry.action);
      flush();
    });
  });
  undoButton.addEventListener("click", undo);

  // Nearest first, when the phone may tell where it is.
  const nearest = document.getElementById("crew-nearest");
  const list = document.getElementById("crew-facilities");

  function distanceKm(lat1, lon1, lat2, lon2) {
    const rad = Math.PI / 180;
    const a = Math.sin((lat2 - lat1) * rad / 2) ** 2 +
      Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin((lon2 - lon1) * rad / 2) ** 2;
    return 12742 * Math.asin(Math.sqrt(a));
  }

  function sortByDistance(position) {
    const here = position.coords;
    const items = Array.from(list.querySelectorAll(".crew-facility"));
    items.forEach(function (item) {
      const has = item.dataset.lat !== undefined;
      item.dataset.km = has ? distanceKm(here.latitude, here.longitude, Number(item.dataset.lat), Number(item.dataset.lon)) : "";
      item.querySelector(".crew-distance").textContent = has ? Number(item.dataset.km).toFixed(1) + " km" : "";
    });
    items.sort(function (a, b) {
      const ka = a.dataset.km === "" ? Infinity : Number(a.dataset.km);
      const kb = b.dataset.km === "" ? Infinity : Number(b.dataset.km);
      return ka - kb;
    });
    items.forEach(function (item) { list.appendChild(item); });
  }

  function locate() {
    navigator.geolocation.getCurrentPosition(function (position) {
      localStorage.setItem(nearestKey, "1");
      sortByDistance(position);
    }, function () {
      localStorage.removeItem(nearestKey);
      say(t.crew_location_failed);
    }, { maximumAge: 300000, timeout: 15000 });
  }

  if ("geolocation" in navigator && list.querySelector("[data-lat]")) {
    nearest.hidden = false;
    nearest.addEventListener("click", locate);
    if (localStorage.getItem(nearestKey) === "1") locate();
  }

  // Keep this page and its files on the phone, so it opens without a connection.
  if ("serviceWorker" in navigator && window.caches) {
    navigator.serviceWorker.register("/crew/sw.js", { scope: "/crew" }).then(function () {
      return navigator.serviceWorker.ready;
    }).then(function () {
      return caches.open(CACHE);
    }).then(function (cache) {
      return cache.addAll(["/crew?lang=" + lang, "/static/crew.js", "/static/crew.css", "/static/icon.svg"]);
    }).then(function () {
      body.dataset.offlineReady = "true";
    }).catch(function () { /* no offline copy this time; logging still works */ });
  }
  const logout = document.querySelector("form.crew-account");
  logout.addEventListener("submit", function (event) {
    if (!window.caches) return;
    event.preventDefault();
    caches.delete(CACHE).finally(function () { logout.submit(); });
  });

  window.addEventListener("online", flush);
  window.addEventListener("offline", showQueue);
  setInterval(flush, 20000);
  flush();
})();

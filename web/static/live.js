// Keeps the server-rendered list live over the WebSocket; the page works without it.
"use strict";
(function () {
  const body = document.body;
  const lang = body.dataset.lang;
  const t = JSON.parse(body.dataset.strings);
  const status = document.getElementById("connection");
  const numberFormat = new Intl.NumberFormat(lang === "en" ? "en-GB" : lang + "-FI", { maximumFractionDigits: 1 });

  function ageText(updated) {
    if (!updated) return t.no_data;
    const seconds = (Date.now() - Date.parse(updated)) / 1000;
    if (seconds < 60) return t.updated + " " + t.just_now;
    const minutes = Math.floor(seconds / 60);
    const text = minutes < 60 ? minutes + " " + t.min : Math.floor(minutes / 60) + " " + t.h;
    return t.updated + " " + text + " " + t.ago;
  }

  function refreshAge(item) {
    const updated = item.dataset.updated;
    item.querySelector(".age-text").textContent = ageText(updated);
    const stale = !updated || (Date.now() - Date.parse(updated)) / 1000 > Number(item.dataset.staleAfter);
    item.classList.toggle("is-stale", stale);
    item.querySelector(".stale-label").hidden = !stale || !updated;
  }

  function show(f) {
    const item = document.getElementById("f-" + f.id);
    if (!item) return;
    item.querySelector(".occupancy").textContent = f.occupancy === null ? "–" : numberFormat.format(f.occupancy);
    const pct = item.querySelector(".pct");
    if (pct) pct.textContent = f.occupancy_pct === null ? "" : Math.round(f.occupancy_pct) + " % " + t.of_capacity + " (" + f.capacity + ")";
    item.querySelector(".level").textContent = f.level ? t[f.level] : "";
    item.className = item.className.replace(/level-\S+/, "level-" + (f.level || "none"));
    const rink = item.querySelector(".rink");
    rink.textContent = f.ice_temp_c === null ? "" : t.ice + " " + numberFormat.format(f.ice_temp_c) + " °C" +
      (f.air_temp_c === null ? "" : ", " + t.air + " " + numberFormat.format(f.air_temp_c) + " °C");
    item.querySelector(".camera").textContent = f.people === null ? "" : f.people + " " + t.people + " " + t.on_camera;
    item.dataset.updated = f.updated_at || "";
    item.dataset.staleAfter = f.stale_after_s;
    refreshAge(item);
  }

  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/api/v1/live?lang=" + lang);
    socket.onopen = function () { delay = 1000; status.textContent = ""; };
    socket.onmessage = function (event) {
      const message = JSON.parse(event.data);
      if (message.facility) show(message.facility);
    };
    socket.onclose = function () {
      status.textContent = t.offline;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  document.querySelectorAll(".facility").forEach(refreshAge);
  setInterval(function () { document.querySelectorAll(".facility").forEach(refreshAge); }, 15000);
  connect();
})();

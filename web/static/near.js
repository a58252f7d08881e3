// "Nearest first" on the list page: the browser's location is used here, in the
// browser, and never sent anywhere. Without this file (or a location) the list
// keeps its server-side order and filters.
"use strict";
(function () {
  const sort = document.getElementById("sort");
  const list = document.getElementById("facilities");
  const status = document.getElementById("sort-status");
  if (!sort || sort.value !== "near" || !list) return;
  const t = JSON.parse(document.body.dataset.strings);
  const km = new Intl.NumberFormat(document.body.dataset.locale,
    { style: "unit", unit: "kilometer", maximumFractionDigits: 1 });

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (slot, name) {
      return name in values ? values[name] : slot;
    });
  }

  // Great-circle distance in kilometres (haversine).
  function distance(lat1, lon1, lat2, lon2) {
    const rad = Math.PI / 180;
    const a = Math.sin((lat2 - lat1) * rad / 2) ** 2 +
      Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin((lon2 - lon1) * rad / 2) ** 2;
    return 12742 * Math.asin(Math.sqrt(a));
  }

  function byDistance(position) {
    const here = position.coords;
    const items = Array.from(list.children).map(function (li, index) {
      const card = li.querySelector(".facility");
      const lat = parseFloat(card.dataset.lat);
      const lon = parseFloat(card.dataset.lon);
      const d = isNaN(lat) || isNaN(lon) ? Infinity : distance(here.latitude, here.longitude, lat, lon);
      const label = card.querySelector(".distance");
      if (label) label.textContent = d === Infinity ? "" : fill(t.distance, { km: km.format(d) });
      return { li: li, d: d, index: index };
    });
    items.sort(function (a, b) { return a.d - b.d || a.index - b.index; });
    items.forEach(function (item) { list.appendChild(item.li); });
    status.textContent = t.sorted_near;
  }

  function failed() { status.textContent = t.location_failed; }

  if (!navigator.geolocation) { failed(); return; }
  navigator.geolocation.getCurrentPosition(byDistance, failed, { maximumAge: 300000, timeout: 15000 });
})();

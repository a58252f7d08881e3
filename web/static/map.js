// The map view: a marker for each card of the list below that has a location, built
// from the card itself and kept in step with it (live.js updates the cards). Each
// marker is a link to the place's page, coloured and labelled with its level, with
// the place, the level and the figure in its accessible name. Tiles come only from
// the server the operator configured (data-tiles).
"use strict";
(function () {
  const element = document.getElementById("map");
  const list = document.getElementById("facilities");
  if (!element || !window.L) return;
  const t = JSON.parse(document.body.dataset.strings);
  const cards = list ? Array.from(list.querySelectorAll(".facility[data-lat]")) : [];
  if (!cards.length) return; // none of them has a location: no map, the list as it is
  element.hidden = false;
  document.querySelector(".skip-map").hidden = false;

  const map = L.map(element, { zoomControl: false });
  L.control.zoom({ zoomInTitle: t.map_zoom_in, zoomOutTitle: t.map_zoom_out }).addTo(map);
  L.tileLayer(element.dataset.tiles, {
    attribution: element.dataset.attribution,
    maxZoom: 19,
    // The tile server may ask where a request comes from; it gets the origin, no more.
    referrerPolicy: "strict-origin",
  }).addTo(map);

  function text(card, selector) {
    const part = card.querySelector(selector);
    return part && !part.hidden ? part.textContent.trim() : "";
  }

  function describe(card) {
    const level = text(card, ".level-word");
    const figure = (text(card, ".occupancy") + " " + text(card, ".unit")).trim();
    const stale = text(card, ".stale-label");
    const name = text(card, "h2");
    return {
      name: name,
      level: (card.className.match(/\blevel-(\w+)\b/) || [])[1] || "none",
      stale: card.classList.contains("is-stale"),
      shown: level || "–",
      label: name + ": " + [level, figure, stale].filter(Boolean).join(", "),
      tip: name + " · " + [figure, level].filter(Boolean).join(", "),
    };
  }

  const markers = new Map();

  function draw(card) {
    const entry = markers.get(card);
    const d = describe(card);
    entry.link.className = "pin level-" + d.level + (d.stale ? " is-stale" : "");
    entry.link.textContent = d.shown;
    entry.link.setAttribute("aria-label", d.label);
    entry.marker.setTooltipContent(d.tip);
  }

  const points = cards.map(function (card) {
    const at = [Number(card.dataset.lat), Number(card.dataset.lon)];
    const link = document.createElement("a");
    link.href = card.querySelector(".card-link").getAttribute("href");
    const marker = L.marker(at, {
      icon: L.divIcon({ html: link, className: "pin-icon", iconSize: null }),
      keyboard: false, // the link inside is the tab stop
      riseOnHover: true,
    }).bindTooltip("", { direction: "top", offset: [0, -34] }).addTo(map);
    // Focused from the keyboard: in front of its neighbours, its name shown.
    link.addEventListener("focus", function () { marker.setZIndexOffset(10000).openTooltip(); });
    link.addEventListener("blur", function () { marker.setZIndexOffset(0).closeTooltip(); });
    markers.set(card, { marker: marker, link: link });
    draw(card);
    return at;
  });
  map.fitBounds(points, { padding: [24, 24], maxZoom: 15 });

  // Live: redraw the marker of a card live.js has changed.
  const changed = new Set();
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      const node = record.target.nodeType === 1 ? record.target : record.target.parentNode;
      const card = node && node.closest(".facility");
      if (card && markers.has(card)) changed.add(card);
    });
    changed.forEach(draw);
    changed.clear();
  }).observe(list, { subtree: true, attributes: true, attributeFilter: ["class", "hidden"],
    characterData: true, childList: true });
})();

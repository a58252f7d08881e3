// The crew page's service worker: when the phone has no connection, the page the
// crew last opened still loads (from the cache crew.js filled), so taps can be
// queued. Everything else goes to the network as usual.
"use strict";
const CACHE = "ruuhka-crew-v1";
const NETWORK_WAIT_MS = 4000;

self.addEventListener("install", function () { self.skipWaiting(); });

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n.startsWith("ruuhka-crew-") && n !== CACHE; })
      .map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function withTimeout(promise, ms) {
  return new Promise(function (resolve, reject) {
    const timer = setTimeout(function () { reject(new Error("timeout")); }, ms);
    promise.then(function (r) { clearTimeout(timer); resolve(r); }, function (e) { clearTimeout(timer); reject(e); });
  });
}

// One cached page per language; a flash message (?done=…) is not kept.
function pageKey(url) {
  return "/crew?lang=" + (url.searchParams.get("lang") || "");
}

async function page(request, url) {
  try {
    const response = await withTimeout(fetch(request), NETWORK_WAIT_MS);
    if (response.type === "opaqueredirect" || response.redirected || response.status === 401) {
      await caches.delete(CACHE); // logged out or the session ended: forget the page
    } else if (response.ok) {
      const cache = await caches.open(CACHE);
      await cache.put(pageKey(url), response.clone());
    }
    return response;
  } catch (error) {
    const cache = await caches.open(CACHE);
    const exact = await cache.match(pageKey(url));
    if (exact) return exact;
    const any = (await cache.keys()).find(function (r) { return new URL(r.url).pathname === "/crew"; });
    if (any) return cache.match(any);
    throw error;
  }
}

async function asset(request) {
  try {
    return await withTimeout(fetch(request), NETWORK_WAIT_MS);
  } catch (error) {
    const cached = await caches.match(request);
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", function (event) {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === "/crew") {
    event.respondWith(page(request, url));
  } else if (url.pathname.startsWith("/static/crew") || url.pathname === "/static/icon.svg") {
    event.respondWith(asset(request));
  }
});

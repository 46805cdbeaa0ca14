/* RingPool tag for pool {{ pool_key }}. Include once per page:
 *   <script async src="https://<host>/tag/{{ pool_key }}.js"></script>
 * and mark where the number goes:
 *   <a href="tel:+18005550100" data-ringpool-number>(800) 555-0100</a>
 * Links get the new tel: target, elements get the new number as text. If anything fails, the page
 * keeps the number it was written with. */
(function () {
  "use strict";
  var API = "{{ api_url|escapejs }}";
  var COOKIE = "_ringpool_vid";
  var RENEW_EVERY_MS = 60 * 1000;
  if (window["__ringpool_{{ pool_key|escapejs }}"]) { return; }
  window["__ringpool_{{ pool_key|escapejs }}"] = true;

  // The visitor id was made on this page: until an answer comes, the API is told so (it then tries a
  // claim first; a hint only).
  var made = false;

  function visitorId() {
    var match = document.cookie.match(new RegExp("(?:^|; )" + COOKIE + "=([A-Za-z0-9_-]{8,128})"));
    var id = match ? match[1] : null;
    if (!id) {
      made = true;
      var bytes = new Uint8Array(18);
      (window.crypto || window.msCrypto).getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    // First-party cookie, refreshed on every page so a returning visitor keeps the same id.
    document.cookie = COOKIE + "=" + id + "; Max-Age=31536000; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
    return id;
  }

  function pageParams() {
    var params = {};
    new URLSearchParams(location.search).forEach(function (value, name) {
      if (Object.keys(params).length < 50) { params[name.slice(0, 100)] = value.slice(0, 500); }
    });
    return params;
  }

  function swap(answer) {
    var nodes = document.querySelectorAll("[data-ringpool-number]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.tagName === "A") { node.setAttribute("href", "tel:" + answer.number); }
      if (node.getAttribute("data-ringpool-number") !== "href-only") { node.textContent = answer.display; }
      node.setAttribute("data-ringpool-kind", answer.kind);
    }
  }

  var vid = visitorId();
  var shown = null;
  var retrying = false;  // one retry per 503: "busy" (a rush on the last numbers) or "unavailable"

  function ask(keepalive) {
    return fetch(API, {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ visitor_id: vid, page_url: location.href.slice(0, 2048),
                             params: pageParams(), keepalive: keepalive, new_visitor: made })
    }).then(function (response) {
      if (response.status === 503 && !retrying) {
        retrying = true;
        var seconds = Math.min(parseInt(response.headers.get("Retry-After"), 10) || 1, 30);
        // Spread over one to two times the wait: pages answered together do not come back together.
        setTimeout(function () { ask(keepalive); }, seconds * (1000 + Math.random() * 1000));
      }
      if (!response.ok) { throw new Error("RingPool: " + response.status); }
      return response.json();
    }).then(function (answer) {
      retrying = false;
      made = false;
      if (shown !== answer.number) { swap(answer); }
      shown = answer.number;
      return answer;
    }).catch(function () { /* keep what the page shows */ });
  }

  function start() {
    ask(false);
    setInterval(function () {
      if (document.visibilityState === "visible") { ask(true); }
    }, RENEW_EVERY_MS);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && shown) { ask(true); }
    });
    window.addEventListener("pagehide", function (event) {
      if (event.persisted) { return; }  // kept in the back-forward cache: the page may come back
      var body = JSON.stringify({ visitor_id: vid });
      if (navigator.sendBeacon) { navigator.sendBeacon(API + "/release", body); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

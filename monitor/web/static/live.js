// Keeps a mailcanary page current without reloading: when the daemon records a verdict it
// says "change" on /events; the page is fetched again and its <main> swapped in. If the
// stream cannot be held (too many pages, a proxy), a slow periodic fetch does the same.
"use strict";
(function () {
  const FALLBACK_MS = 60000;
  let pending = null;
  let timer = null;

  function mark(on) {
    const badge = document.getElementById("live");
    if (badge) badge.classList.toggle("on", on);
  }

  async function refresh() {
    pending = null;
    try {
      const answer = await fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      const main = fresh.getElementById("page");
      const current = document.getElementById("page");
      if (main && current) {
        current.replaceWith(document.adoptNode(main));
        document.title = fresh.title;
      }
    } catch (error) {
      mark(false); // the daemon is restarting; the stream's reconnect will refresh again
    }
  }

  function soon() {
    // Several verdicts in one moment make one fetch.
    if (pending === null) pending = window.setTimeout(refresh, 300);
  }

  function fallback() {
    if (timer === null) timer = window.setInterval(soon, FALLBACK_MS);
  }

  if (!("EventSource" in window)) {
    fallback();
    return;
  }
  const stream = new EventSource("/events");
  let hello = false;
  stream.addEventListener("hello", function () {
    mark(true);
    if (hello) soon(); // reconnected (the daemon restarted): what changed meanwhile is unknown
    hello = true;
  });
  stream.addEventListener("change", soon);
  stream.addEventListener("error", function () {
    mark(false);
    if (stream.readyState === EventSource.CLOSED) fallback();
  });
})();

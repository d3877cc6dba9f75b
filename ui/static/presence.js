// Presence on the holder's live session page (no inline script: the page
// marks #presence with data-* attributes).
//
// While the page is open it renews the holder's presence lease: a POST to
// data-heartbeat at once and then every data-every milliseconds, with the
// CSRF token in the X-CSRF-Token header. An answer of 404 or 409 (the lease
// lapsed, or the session was ended elsewhere), or any other refusal, means
// the session is over: the page says so in its status box. A server-sent
// event stream (data-events) says the same at once when the session ends
// elsewhere. When the page goes away (closed, or left for another page),
// a beacon POSTs data-leave, with the CSRF token in the form body, and the
// session ends. Pressing "Arrêter maintenant" posts its form for real, so
// it works without this script too.
//
// A colleague's delegation (data-kind="delegation") lives for its whole
// window; the holder's presence only lets its tokens work. When its lease
// lapses (a heartbeat answers 409, or the stream says it is not live but
// not over), the page pauses: no more heartbeats, the "Je suis disponible"
// form (#start-form, a real form that starts the lease again) shows
// instead of the countdown. A page rendered paused (data-paused="1")
// starts so. Leaving a delegation ends only its lease; a paused page
// sends no beacon.
(function () {
  'use strict';

  var root = document.getElementById('presence');
  if (!root || !root.getAttribute('data-heartbeat')) { return; }
  var form = document.getElementById('stop-form');
  var startForm = document.getElementById('start-form');
  var pausedBox = document.getElementById('presence-paused');
  var delegation = root.getAttribute('data-kind') === 'delegation';
  var paused = delegation && root.getAttribute('data-paused') === '1';
  var token = form ? (form.querySelector('input[name="_csrf"]') || {}).value || '' : '';
  var statusBox = document.getElementById('presence-status');
  var running = document.getElementById('presence-running');
  var countdown = document.getElementById('countdown');
  var every = parseInt(root.getAttribute('data-every'), 10) || 5000;
  var remaining = parseInt(root.getAttribute('data-remaining'), 10) || 0;
  var started = Date.now();
  var over = false;
  var leaving = false; // the stop form or a link to this same page: no beacon
  var offline = false;
  var timer = null;
  var ticker = null;
  var stream = null;
  var wakeLock = null;

  function say(text) {
    if (!statusBox) { return; }
    statusBox.textContent = text;
    statusBox.className = text ? 'status' : '';
  }

  function ended() {
    if (over) { return; }
    over = true;
    clearTimeout(timer);
    clearInterval(ticker);
    if (stream) { stream.close(); }
    if (running) { running.hidden = true; }
    if (pausedBox) { pausedBox.hidden = true; }
    if (form) { form.hidden = true; }
    var title = document.getElementById('live-title');
    if (title) { title.textContent = root.getAttribute('data-over-title'); }
    say(root.getAttribute('data-ended'));
    releaseWakeLock();
  }

  // pause: a delegation's lease lapsed; it goes on, its tokens do not.
  function pause() {
    if (over || paused) { return; }
    paused = true;
    clearTimeout(timer);
    if (running) { running.hidden = true; }
    if (pausedBox) { pausedBox.hidden = false; }
    say(root.getAttribute('data-paused-text'));
    releaseWakeLock();
  }

  // resume: the lease is alive again (started from another page).
  function resume() {
    if (over || !paused) { return; }
    paused = false;
    if (pausedBox) { pausedBox.hidden = true; }
    if (running) { running.hidden = false; }
    say('');
    keepAwake();
    beat();
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function tick() {
    var left = Math.max(0, remaining - Math.floor((Date.now() - started) / 1000));
    if (countdown) {
      var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      countdown.textContent = (h > 0 ? h + ':' + pad(m) : pad(m)) + ':' + pad(s);
    }
    if (left === 0) {
      // The window closed: the server ends the mandate by itself; a
      // heartbeat now confirms a session's end, a delegation is over.
      clearInterval(ticker);
      if (delegation) { ended(); } else { beat(); }
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (!over) { timer = setTimeout(beat, every); }
  }

  function beat() {
    if (over || paused) { return; }
    fetch(root.getAttribute('data-heartbeat'), {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Accept': 'application/json', 'X-CSRF-Token': token }
    }).then(function (res) {
      if (res.ok) {
        if (offline) { offline = false; say(root.getAttribute('data-online')); }
        schedule();
        return;
      }
      if (res.status >= 500) { throw new Error('server'); }
      if (delegation && res.status === 409) { pause(); return; } // the lease lapsed
      ended(); // 404, 409, or signed out: over
    }).catch(function () {
      if (over || paused) { return; }
      offline = true;
      say(root.getAttribute('data-offline'));
      schedule();
    });
  }

  function leave() {
    if (over || leaving || paused) { return; }
    over = true;
    var body = new URLSearchParams();
    body.set('_csrf', token);
    if (!(navigator.sendBeacon && navigator.sendBeacon(root.getAttribute('data-leave'), body))) {
      fetch(root.getAttribute('data-leave'), { method: 'POST', body: body, credentials: 'same-origin', keepalive: true });
    }
  }

  // The screen stays on while the page is shown, so that a phone going to
  // sleep does not end the session.
  function keepAwake() {
    if (over || paused || !navigator.wakeLock || document.visibilityState !== 'visible') { return; }
    navigator.wakeLock.request('screen').then(function (l) { wakeLock = l; }).catch(function () {});
  }

  function releaseWakeLock() {
    if (wakeLock) { wakeLock.release().catch(function () {}); wakeLock = null; }
  }

  function follow() {
    var url = root.getAttribute('data-events');
    if (!url || !window.EventSource) { return; }
    stream = new EventSource(url);
    stream.addEventListener('state', function (ev) {
      var s;
      try { s = JSON.parse(ev.data); } catch (e) { return; } // a malformed event changes nothing
      if (s.over || (!delegation && !s.live)) { ended(); } else if (!s.live) { pause(); } else { resume(); }
    });
  }

  if (form) {
    form.addEventListener('submit', function () { leaving = true; });
  }
  if (startForm) {
    startForm.addEventListener('submit', function () { leaving = true; });
  }
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest ? ev.target.closest('a[href]') : null;
    if (a && a.pathname === window.location.pathname && a.origin === window.location.origin) {
      leaving = true; // the same page (another language): the next page beats on
    }
  });
  window.addEventListener('pagehide', leave);
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') { beat(); keepAwake(); }
  });

  ticker = setInterval(tick, 1000);
  follow();
  keepAwake();
  beat();
}());

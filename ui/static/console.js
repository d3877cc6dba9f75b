// The sessions console. No inline script: the pages carry what this needs
// in data- attributes.
//
// On a session's page (#session) it follows the session's state over
// server-sent events (data-events: a "state" event {state, end_reason,
// not_after, remaining} at once and after every change) and runs the
// countdown. In the browser that asked for the session (data-device-code)
// it is also the RFC 8628 client: it polls the token endpoint at the
// interval the server gave, and as soon as the interval allows when the
// state turns "approved"; slow_down adds 5 seconds (§3.5). The access token
// stays in this page's memory, never in storage: a button copies it.
//
// On the list of sessions (#sessions) it updates the state of each
// unfinished session shown.
(function () {
  'use strict';

  var FINAL = { refused: true, expired_unanswered: true, ended: true };

  function label(root, state) {
    return root.getAttribute('data-' + state) || state;
  }

  // deviceClient polls for the session's token; onToken(token) and
  // onFailure(kind) tell the page.
  function deviceClient(root, onToken, onFailure) {
    var code = root.getAttribute('data-device-code');
    var idle = { now: function () {}, stop: function () {} };
    if (!code || !window.fetch) { return idle; }
    var interval = Math.max(1, Number(root.getAttribute('data-interval')) || 5) * 1000;
    var last = 0;         // performance.now() when the last poll started; 0: none yet
    var timer = null;
    var busy = false;
    var done = false;

    function post(fields) {
      var body = new URLSearchParams();
      Object.keys(fields).forEach(function (k) { body.set(k, fields[k]); });
      body.set('client_id', root.getAttribute('data-client-id'));
      return fetch(root.getAttribute('data-token-url'), {
        method: 'POST', body: body, credentials: 'omit', cache: 'no-store',
        headers: { 'Accept': 'application/json' }
      }).then(function (res) {
        return res.json().then(function (json) { return { ok: res.ok, body: json || {} }; });
      });
    }

    function schedule(delay) {
      if (done) { return; }
      clearTimeout(timer);
      timer = setTimeout(poll, delay);
    }

    function finish() {
      done = true;
      clearTimeout(timer);
    }

    function poll() {
      timer = null;
      if (done || busy) { return; }
      busy = true;
      last = performance.now();
      post({ grant_type: root.getAttribute('data-grant-type'), device_code: code }).then(function (r) {
        busy = false;
        if (done) { return; }
        if (r.ok && r.body.access_token) {
          finish();
          onToken(r.body.access_token);
          return;
        }
        switch (r.body.error) {
          case 'authorization_pending':
            schedule(interval);
            return;
          case 'slow_down':
            interval += 5000;
            schedule(interval);
            return;
          case 'access_denied':
            finish();
            onFailure('denied');
            return;
          case 'expired_token':
            finish();
            onFailure('expired');
            return;
        }
        finish();
        onFailure('failed');
      }, function () {
        // The network failed: try again at the next interval.
        busy = false;
        schedule(interval);
      });
    }

    schedule(interval);
    return {
      // now polls as soon as the interval since the last poll allows.
      now: function () {
        if (done || busy) { return; }
        schedule(last ? Math.max(0, last + interval - performance.now()) : 0);
      },
      stop: finish
    };
  }

  function session(root) {
    var stateEl = document.getElementById('session-state');
    var endEl = document.getElementById('session-end');
    var countdownEl = document.getElementById('countdown');
    var deviceEl = document.getElementById('device');
    var tokenEl = document.getElementById('token');
    var errorEl = document.getElementById('token-error');
    var copyBtn = document.getElementById('copy-token');
    var copyStatus = document.getElementById('token-status');
    var manual = document.getElementById('token-value');
    var manualLabel = document.getElementById('token-value-label');
    var endForm = document.getElementById('end-form');
    var state = root.getAttribute('data-state');
    var token = null; // in memory only
    var deadline = null;
    var ticking = null;

    function tick() {
      if (deadline === null) { return; }
      var left = Math.max(0, Math.round((deadline - performance.now()) / 1000));
      var m = Math.floor(left / 60);
      var s = left % 60;
      countdownEl.textContent = root.getAttribute('data-countdown')
        .replace('{m}', String(m)).replace('{s}', (s < 10 ? '0' : '') + s);
    }

    function countdown(remaining) {
      if (remaining === null) {
        deadline = null;
        clearInterval(ticking);
        ticking = null;
        countdownEl.hidden = true;
        return;
      }
      deadline = performance.now() + remaining * 1000;
      tick();
      countdownEl.hidden = false;
      if (!ticking) { ticking = setInterval(tick, 1000); }
    }

    function setToken(t) {
      token = t;
      if (!tokenEl) { return; }
      if (!t) {
        tokenEl.hidden = true;
        manual.value = '';
        return;
      }
      if (tokenEl.hidden) {
        tokenEl.hidden = false;
        document.getElementById('token-title').focus();
      }
      if (!manual.hidden) { manual.value = t; }
    }

    function failure(kind) {
      if (!errorEl) { return; }
      errorEl.textContent = root.getAttribute('data-token-' + kind) || '';
      errorEl.hidden = false;
    }

    var client = deviceClient(root, setToken, failure);

    function show(ev) {
      if (ev.state !== state) {
        state = ev.state;
        root.setAttribute('data-state', state);
        stateEl.textContent = label(root, state);
        stateEl.className = 'state state-' + state;
      }
      if (ev.end_reason) {
        endEl.textContent = root.getAttribute('data-end-' + ev.end_reason) || '';
        endEl.hidden = false;
      }
      countdown(state === 'approved' || state === 'active' ? Number(ev.remaining) || 0 : null);
      if (deviceEl && state !== 'requested') { deviceEl.hidden = true; }
      if (state === 'approved') { client.now(); }
      if (FINAL[state]) {
        client.stop();
        setToken(null);
        if (endForm) { endForm.hidden = true; }
      }
    }

    if (copyBtn) {
      copyBtn.addEventListener('click', function () {
        if (!token) { return; }
        var byHand = function () {
          manual.value = token;
          manual.hidden = false;
          manualLabel.hidden = false;
          manual.focus();
          manual.select();
        };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(token).then(function () {
            copyStatus.textContent = root.getAttribute('data-copied');
          }, byHand);
        } else {
          byHand();
        }
      });
    }

    if (state === 'approved' || state === 'active') {
      countdown(Number(root.getAttribute('data-remaining')) || 0);
    }
    if (state === 'approved') { client.now(); }
    if (FINAL[state] || !window.EventSource) {
      if (FINAL[state]) { client.stop(); }
      return;
    }
    var es = new EventSource(root.getAttribute('data-events'));
    es.addEventListener('state', function (e) {
      var ev;
      try { ev = JSON.parse(e.data); } catch (err) { return; }
      show(ev);
      if (FINAL[ev.state]) { es.close(); }
    });
  }

  function list(root) {
    var url = root.getAttribute('data-events');
    if (!url || !window.EventSource) { return; }
    var open = {};
    url.replace(/(?:\?|&)id=([^&]*)/g, function (_, id) { open[decodeURIComponent(id)] = true; return ''; });
    var es = new EventSource(url);
    es.addEventListener('state', function (e) {
      var ev;
      try { ev = JSON.parse(e.data); } catch (err) { return; }
      var items = root.querySelectorAll('[data-state-of]');
      for (var i = 0; i < items.length; i++) {
        if (items[i].getAttribute('data-state-of') === ev.id) {
          items[i].textContent = label(root, ev.state);
          items[i].className = 'state state-' + ev.state;
        }
      }
      if (FINAL[ev.state]) {
        var forms = root.querySelectorAll('form[data-end-of]');
        for (var j = 0; j < forms.length; j++) {
          if (forms[j].getAttribute('data-end-of') === ev.id) { forms[j].hidden = true; }
        }
        delete open[ev.id];
        if (Object.keys(open).length === 0) { es.close(); }
      }
    });
  }

  function init() {
    var s = document.getElementById('session');
    if (s) { session(s); }
    var l = document.getElementById('sessions');
    if (l) { list(l); }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
}());

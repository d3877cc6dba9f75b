// Passkeys (WebAuthn) for mandated's pages. No inline script: the pages
// mark their forms with data-passkey="create" or data-passkey="get".
//
// On submit, a form either uses the options the page carries
// (data-options, with its ceremony already in the "ceremony" field) or asks
// for them with a POST of the form's fields to data-begin, which answers
// {"ceremony": "...", "options": {"publicKey": {...}}}. It then asks the
// browser for the credential, puts its JSON (PublicKeyCredential.toJSON()
// form, binary values in base64url) in the "credential" field and submits
// the form for real: the server checks it and answers with a page.
(function () {
  'use strict';

  function decode(s) {
    var b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) { b64 += '='; }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function encode(buf) {
    var bytes = new Uint8Array(buf);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: decode(c.id) };
      if (c.transports) { d.transports = c.transports; }
      return d;
    });
  }

  function creationOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = decode(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: decode(pk.user.id) });
    pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = decode(pk.challenge);
    if (pk.allowCredentials) { pk.allowCredentials = descriptors(pk.allowCredentials); }
    return { publicKey: pk };
  }

  function credentialJSON(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: encode(cred.rawId),
      type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: encode(r.clientDataJSON) }
    };
    if (cred.authenticatorAttachment) { out.authenticatorAttachment = cred.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = encode(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = encode(r.authenticatorData);
      out.response.signature = encode(r.signature);
      if (r.userHandle) { out.response.userHandle = encode(r.userHandle); }
    }
    return JSON.stringify(out);
  }

  function field(form, name) {
    var el = form.querySelector('input[name="' + name + '"]');
    if (!el) {
      el = document.createElement('input');
      el.type = 'hidden';
      el.name = name;
      form.appendChild(el);
    }
    return el;
  }

  function showError(form, key) {
    var box = document.getElementById(form.getAttribute('data-error-box'));
    if (!box) { return; }
    box.textContent = box.getAttribute('data-' + key) || '';
    box.hidden = false;
    box.focus();
  }

  function begin(form) {
    var inline = form.getAttribute('data-options');
    if (inline) {
      return Promise.resolve({ options: JSON.parse(inline) });
    }
    var body = new URLSearchParams(new FormData(form));
    return fetch(form.getAttribute('data-begin'), {
      method: 'POST',
      body: body,
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json' }
    }).then(function (res) {
      if (!res.ok) { throw new Error('begin'); }
      return res.json();
    });
  }

  function run(form, button) {
    var mode = form.getAttribute('data-passkey');
    button.disabled = true;
    begin(form).then(function (b) {
      if (b.ceremony) { field(form, 'ceremony').value = b.ceremony; }
      if (mode === 'create') {
        return navigator.credentials.create(creationOptions(b.options));
      }
      return navigator.credentials.get(requestOptions(b.options));
    }).then(function (cred) {
      field(form, 'credential').value = credentialJSON(cred);
      form.submit();
    }).catch(function (err) {
      button.disabled = false;
      if (err && err.message === 'begin') {
        // Let the server say what is wrong (an expired link, a session
        // that ended), on a page of its own.
        form.submit();
        return;
      }
      showError(form, err && err.name === 'NotAllowedError' ? 'cancelled' : 'failed');
    });
  }

  function setUp(form) {
    var button = form.querySelector('button[type="submit"]');
    if (!window.PublicKeyCredential || !navigator.credentials) {
      if (button) { button.disabled = true; }
      showError(form, 'unsupported');
      return;
    }
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (!form.reportValidity()) { return; }
      run(form, button);
    });
  }

  function init() {
    var forms = document.querySelectorAll('form[data-passkey]');
    for (var i = 0; i < forms.length; i++) { setUp(forms[i]); }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
}());

/*
 * 证书更新 and 证书变更: drives the applicant's key agent through the
 * stages CertHall records (crates/service/src/renewal.rs, change.rs).
 * `data-mode` says which: `renew`; `change` (介质查询 only: the chosen
 * certificate opens a change order); `write` (an approved change order's
 * new certificate, through the same stages as a renewal). The routes
 * come from the page (`data-*-url`, `{serial}` for the chosen one).
 *
 *   介质查询 → PIN checked by the agent → start (the old key signs
 *   CertHall's challenge; SMS code, window, the token) → new key pair in
 *   the same token → issue → write → read back →
 *   CertHall compares, revokes the old certificate (superseded) and
 *   completes → the old key pair is removed from the token.
 *
 * A failure is reported to CertHall (which revokes a new certificate it
 * issued; the old one stays valid) and the new key pair is deleted again.
 * The PIN stays in this page's memory for one run and goes only to the
 * agent.
 */
(function () {
  'use strict';
  var root = document.getElementById('renewal');
  if (!root) return;
  var agent = new window.CertHallAgent(root.dataset.agentUrl);
  var post = function (path, body) { return window.CertHallPortal.post(path, body, root.dataset.csrf); };
  var same = window.CertHallAgent.sameSerial;
  var mode = root.dataset.mode || 'renew';
  var verb = mode === 'renew' ? '更新' : '变更';
  function url(name, serial) {
    return root.dataset[name].replace('{serial}', encodeURIComponent(serial));
  }
  var q = function (id) { return root.querySelector('[data-testid="' + id + '"]'); };
  var statusBox = q('agent-status');
  var list = q('media-list');
  var sendBtn = q('send-code');
  var codeStatus = q('code-status');
  var startBtn = q('start-renewal') || q('start-change');
  var progress = q('renewal-progress');
  var stages = new window.CertHallPortal.Stages(progress);
  var errorBox = q('renewal-error');
  var doneBox = q('renewal-done');
  var pinInput = root.querySelector('#pin');
  var codeInput = root.querySelector('#code');
  var mine = Array.prototype.map.call(
    q('account-certificates').children,
    function (li) { return li.dataset; });
  var found = [];
  var busy = false;

  function ours(serial) {
    return mine.filter(function (c) { return same(c.serial, serial); })[0] || null;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function chosen() {
    var r = list.querySelector('input[name="cert"]:checked');
    return r ? found[Number(r.value)] : null;
  }

  var startLabel = startBtn.textContent;

  // A priced renewal not paid yet: the button leads to the payment first.
  function unpaid(f) {
    var own = f && ours(f.cert.serial);
    return !!(own && own.unpaid === '1');
  }

  function update() {
    var c = chosen();
    if (mode === 'change') {
      startBtn.disabled = busy || !c;
      return;
    }
    if (unpaid(c)) {
      sendBtn.disabled = true;
      startBtn.disabled = busy;
      startBtn.textContent = '支付更新费用（' + root.dataset.price + ' 元）';
      return;
    }
    startBtn.textContent = startLabel;
    sendBtn.disabled = busy || !c;
    startBtn.disabled = busy || !c || !pinInput.value || codeInput.value.length !== 6;
  }

  function render() {
    list.innerHTML = '';
    var legend = document.createElement('legend');
    legend.textContent = 'UKey 中的证书';
    list.appendChild(legend);
    if (!found.length) {
      var p = document.createElement('p');
      p.className = 'muted';
      p.textContent = '未在 UKey 中找到证书。请插入存放证书的 UKey 后点击“重新查询”。';
      list.appendChild(p);
    }
    var focus = root.dataset.focus;
    found.forEach(function (f, i) {
      var label = document.createElement('label');
      label.className = 'token';
      label.setAttribute('data-testid', 'media-cert');
      label.setAttribute('data-serial', f.cert.serial);
      var radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'cert';
      radio.value = String(i);
      radio.setAttribute('data-testid', 'media-choice');
      var own = ours(f.cert.serial);
      var note;
      if (f.token.pin && f.token.pin.locked && mode !== 'change') {
        note = 'UKey PIN 已锁定，请先办理 PIN 解锁';
        radio.disabled = true;
      } else if (!own) {
        note = '不属于当前登录的账号，不能在此' + verb;
        radio.disabled = true;
      } else if (own.advice) {
        note = own.advice;
        radio.disabled = true;
      } else if (own.unpaid === '1') {
        note = '可以更新，需先支付更新费用 ' + root.dataset.price + ' 元';
      } else {
        note = mode === 'write' ? '本订单变更的证书，可以写入' : '可以' + verb;
      }
      radio.addEventListener('change', update);
      if (!radio.disabled && (same(focus, f.cert.serial) || found.length === 1)) radio.checked = true;
      label.appendChild(radio);
      var text = ' ' + (f.cert.common_name || f.cert.subject) + ' · 序列号 ' + f.cert.serial +
        ' · 有效期至 ' + String(f.cert.not_after).slice(0, 10) + ' · UKey ' + f.token.serial + ' · ';
      label.appendChild(document.createTextNode(text));
      var status = document.createElement('span');
      status.setAttribute('data-testid', 'media-status');
      status.textContent = note;
      label.appendChild(status);
      if (f.token.pin && f.token.pin.locked) {
        var link = document.createElement('a');
        link.href = '/ukeys/unlock';
        link.textContent = ' 去解锁';
        label.appendChild(link);
      }
      list.appendChild(label);
    });
    update();
  }

  function refresh() {
    statusBox.textContent = '正在查询 UKey…';
    return agent.tokens().then(function (answer) {
      found = window.CertHallAgent.certificates(answer);
      statusBox.textContent = '证书助手已连接，找到 ' + found.length + ' 张证书。';
      render();
    }, function (e) {
      found = [];
      statusBox.textContent = e.message;
      render();
    });
  }

  function sendCode() {
    var c = chosen();
    if (!c) return;
    sendBtn.disabled = true;
    window.CertHallPortal.sendCode(url('codeUrl', c.cert.serial), root.dataset.csrf, codeStatus, update);
  }

  // Opens an order for the chosen certificate and goes on to its page:
  // 证书变更 (the wizard at step 3) or a priced renewal (its payment).
  function openOrder(path, failure) {
    var f = chosen();
    if (!f || busy) return;
    busy = true;
    update();
    errorBox.hidden = true;
    post(path.replace('{serial}', encodeURIComponent(f.cert.serial)), {}).then(function (answer) {
      window.location.assign(answer.next);
    }, function (e) {
      showError((e && e.message) || failure);
      busy = false;
      update();
    });
  }

  function startChange() {
    openOrder(root.dataset.startUrl, '申请变更失败，请稍后重试。');
  }

  function run() {
    var f = chosen();
    if (!f || busy) return;
    if (unpaid(f)) {
      openOrder('/api/v1/certificates/{serial}/renewal/order', '创建更新订单失败，请稍后重试。');
      return;
    }
    busy = true;
    update();
    errorBox.hidden = true;
    doneBox.hidden = true;
    stages.start();
    var s = { stage: 'pin', renewal: null, keyId: null, pin: pinInput.value };

    function step(name, fn) { return stages.step(s, name, fn); }

    Promise.resolve()
      .then(step('pin', function () { return agent.verifyPin(f.token.id, s.pin); }))
      .then(step('start', function () {
        return post(url('challengeUrl', f.cert.serial), {}).then(function (c) {
          return agent.sign(f.token.id, f.cert.key_id, s.pin, c.challenge, 'renew').then(function (signed) {
            return post(url('startUrl', f.cert.serial), {
              token_serial: f.token.serial, code: codeInput.value, challenge: c.challenge,
              signed_data: signed.signed_data, signature: signed.signature
            });
          });
        });
      }))
      .then(step('keygen', function (started) {
        s.renewal = started.renewal.id;
        return agent.generateKey(f.token.id, s.pin, started.algorithm, started.key_label);
      }))
      .then(step('issue', function (made) {
        s.keyId = made.key.key_id;
        return post('/api/v1/renewals/' + s.renewal + '/csr', { csr: made.csr, key_id: s.keyId });
      }))
      .then(step('write', function (issued) {
        return agent.storeCertificate(f.token.id, s.keyId, s.pin, issued.certificate, issued.chain);
      }))
      .then(step('read_back', function () {
        return agent.tokens().then(function (answer) {
          var t = (answer.tokens || []).filter(function (x) { return x.id === f.token.id; })[0];
          var c = t && (t.certificates || []).filter(function (x) { return x.key_id === s.keyId; })[0];
          if (!c) {
            var e = new Error('写入后未能从 UKey 读回新证书。');
            e.code = 'read_back_missing';
            throw e;
          }
          return post('/api/v1/renewals/' + s.renewal + '/written', { certificate: c.certificate });
        });
      }))
      .then(done, failed);

    function done(answer) {
      // The old key pair is no use any more: take it off the token (a
      // failure here changes nothing: its certificate is revoked).
      var cleanup = f.cert.key_id !== s.keyId
        ? agent.deleteKey(f.token.id, f.cert.key_id, s.pin).catch(function () { return null; })
        : Promise.resolve(null);
      return cleanup.then(function () {
        s.pin = null;
        pinInput.value = '';
        codeInput.value = '';
        // The page listed the account's certificates before this one
        // existed: it is the account's, and needs no renewal.
        mine.push({ serial: answer.certificate.serial, advice: '新证书，无需' + verb });
        q('renewed-serial').textContent = answer.certificate.serial;
        q('renewed-until').textContent = answer.certificate.not_after
          ? String(answer.certificate.not_after).slice(0, 10) : '（见“我的证书”）';
        doneBox.hidden = false;
        busy = false;
        return refresh();
      });
    }

    // What CertHall recorded decides what the page says and cleans up: a
    // renewal it completed (an answer lost on the way) is done; one that
    // ended takes its new key pair off the token again.
    function failed(e) {
      var label = stages.fail(s);
      var message = (e && e.message) || verb + '失败。';
      if (!s.renewal) {
        showError('“' + label + '”未完成：' + message);
        return finish();
      }
      return post('/api/v1/renewals/' + s.renewal + '/failed', { message: message })
        .catch(function () {
          return window.fetch('/api/v1/renewals/' + s.renewal, { credentials: 'same-origin', cache: 'no-store' })
            .then(function (r) { return r.json(); }).catch(function () { return null; });
        })
        .then(function (answer) {
          var r = (answer && answer.renewal) || {};
          if (r.state === 'completed') {
            return done({ certificate: { serial: r.new_serial, not_after: '' } });
          }
          showError('“' + label + '”未完成：' + message +
            (r.state === 'failed' || r.state === 'abandoned'
              ? ' 本次' + verb + '已作废，原证书是否仍可使用请以“我的证书”为准；可以重新' +
                (mode === 'write' ? '写入' : verb) + '。'
              : ' 请检查 UKey 和证书助手后重试。'));
          if ((r.state === 'failed' || r.state === 'abandoned') && s.keyId && s.pin) {
            return agent.deleteKey(f.token.id, s.keyId, s.pin).catch(function () { return null; });
          }
          return null;
        })
        .then(finish);
    }

    function finish() {
      s.pin = null;
      busy = false;
      return refresh();
    }
  }

  q('refresh-media').addEventListener('click', function () { errorBox.hidden = true; refresh(); });
  if (mode === 'change') {
    startBtn.addEventListener('click', startChange);
  } else {
    pinInput.addEventListener('input', update);
    codeInput.addEventListener('input', update);
    sendBtn.addEventListener('click', sendCode);
    startBtn.addEventListener('click', run);
  }
  refresh();
})();

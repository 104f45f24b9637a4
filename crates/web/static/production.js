/*
 * 制证 (production) at the counter: drives the producer's key agent through
 * the stages CertHall records (crates/service/src/production.rs):
 *
 *   start → init (blank token: label, random PINs from CertHall) → keygen in
 *   the token → issue (CertHall, from the order's verified data) → write →
 *   read back → CertHall compares and completes.
 *
 * Any failure is reported to CertHall (which ends the attempt and revokes a
 * certificate it issued) and the key pair made by this attempt is deleted
 * from the token again where the agent still answers. PINs stay in memory
 * for the length of one run; they are never shown.
 */
(function () {
  'use strict';
  var root = document.getElementById('production');
  if (!root) return;
  var agent = new window.CertHallAgent(root.dataset.agentUrl);
  var csrf = root.dataset.csrf;
  var orderId = root.dataset.order;
  var statusBox = root.querySelector('[data-testid="agent-status"]');
  var list = root.querySelector('[data-testid="token-list"]');
  var startBtn = root.querySelector('[data-testid="start-production"]');
  var refreshBtn = root.querySelector('[data-testid="refresh-tokens"]');
  var progress = root.querySelector('[data-testid="production-progress"]');
  var stages = new window.CertHallPortal.Stages(progress);
  var errorBox = root.querySelector('[data-testid="production-error"]');
  var tokens = [];
  var busy = false;

  function post(path, body) { return window.CertHallPortal.post(path, body, csrf); }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function render() {
    list.innerHTML = '';
    var legend = document.createElement('legend');
    legend.textContent = '本机 UKey';
    list.appendChild(legend);
    if (!tokens.length) {
      var p = document.createElement('p');
      p.className = 'muted';
      p.textContent = '未检测到 UKey，请插入空白 UKey 后点击“刷新 UKey 列表”。';
      list.appendChild(p);
    }
    tokens.forEach(function (t, i) {
      var label = document.createElement('label');
      label.className = 'token';
      var radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'token';
      radio.value = String(i);
      radio.setAttribute('data-testid', 'token-choice');
      radio.setAttribute('data-serial', t.serial);
      radio.addEventListener('change', function () { startBtn.disabled = busy; });
      label.appendChild(radio);
      var blank = t.initialized === false;
      label.appendChild(document.createTextNode(' ' + (t.label || '（无标签）') + ' · 序列号 ' + t.serial +
        ' · ' + (blank ? '空白' : '已初始化，' + (t.keys || []).length + ' 个密钥')));
      list.appendChild(label);
    });
    startBtn.disabled = true;
  }

  function refresh() {
    statusBox.textContent = '正在检测证书助手…';
    return agent.tokens().then(function (answer) {
      tokens = answer.tokens || [];
      statusBox.textContent = '证书助手已连接，检测到 ' + tokens.length + ' 把 UKey。';
      render();
    }, function (e) {
      tokens = [];
      statusBox.textContent = e.message;
      render();
    });
  }

  function chosen() {
    var r = list.querySelector('input[name="token"]:checked');
    return r ? tokens[Number(r.value)] : null;
  }

  function run() {
    var token = chosen();
    if (!token || busy) return;
    busy = true;
    startBtn.disabled = true;
    refreshBtn.disabled = true;
    errorBox.hidden = true;
    stages.start();
    var s = { stage: 'start', tokenId: token.id, attempt: null, pin: null, keyId: null };

    function step(name, fn) { return stages.step(s, name, fn); }

    Promise.resolve()
      .then(step('start', function () {
        return post('/counter/production/' + orderId + '/attempts',
          { token_serial: token.serial, initialized: token.initialized !== false });
      }))
      .then(step('init', function (started) {
        s.attempt = started.attempt.id;
        s.pin = started.pin;
        s.kind = started.key_kind;
        if (!started.needs_init) return null;
        return agent.request('POST', '/v1/tokens/' + encodeURIComponent(s.tokenId) + '/init',
          { label: started.label, so_pin: started.so_pin, pin: started.pin })
          .then(function (answer) {
            var t = answer.token || answer;
            s.tokenId = t.id;
            return post('/counter/production/attempts/' + s.attempt + '/token', { serial: t.serial });
          });
      }))
      .then(step('keygen', function () {
        return agent.generateKey(s.tokenId, s.pin, s.kind, '签名密钥');
      }))
      .then(step('issue', function (made) {
        s.keyId = made.key.key_id;
        return post('/counter/production/attempts/' + s.attempt + '/csr', { csr: made.csr, key_id: s.keyId });
      }))
      .then(step('write', function (issued) {
        s.serial = issued.serial;
        return agent.storeCertificate(s.tokenId, s.keyId, s.pin, issued.certificate, issued.chain);
      }))
      .then(step('read_back', function () {
        return agent.tokens().then(function (answer) {
          var t = (answer.tokens || []).filter(function (x) { return x.id === s.tokenId; })[0];
          var c = t && (t.certificates || []).filter(function (x) { return x.key_id === s.keyId; })[0];
          if (!c) {
            var e = new Error('写入后未能从 UKey 读回证书。');
            e.code = 'read_back_missing';
            throw e;
          }
          s.readBack = c.certificate;
          return confirm();
        });
      }))
      .then(done, failed);

    // Stage 6's answer: only a mismatch (or an attempt already over) ends
    // the production; anything else (no stock, the network, CertHall busy)
    // keeps it open for 重新确认 with the same certificate — the key on the
    // token is fine.
    function confirm() {
      return post('/counter/production/attempts/' + s.attempt + '/written', { certificate: s.readBack });
    }

    function done() {
      s.pin = null;
      statusBox.textContent = '制证完成，PIN 码已通过短信发送给申请人。';
      window.location.reload();
    }

    function retryable(e) {
      return s.stage === 'read_back' && s.readBack &&
        ['read_back_mismatch', 'production_attempt_closed', 'not_found'].indexOf(e.code) < 0;
    }

    function failed(e) {
      var label = stages.fail(s);
      var message = (e && e.message) || '制证失败。';
      if (retryable(e)) {
        showError('“' + label + '”未完成：' + message);
        var again = document.createElement('button');
        again.type = 'button';
        again.className = 'btn btn-primary btn-small';
        again.textContent = '重新确认';
        again.setAttribute('data-testid', 'confirm-again');
        again.addEventListener('click', function () {
          errorBox.hidden = true;
          stages.mark('read_back', 'running');
          confirm().then(done, failed);
        });
        errorBox.appendChild(document.createTextNode(' '));
        errorBox.appendChild(again);
        return null;
      }
      showError('“' + label + '”失败：' + message +
        ' 本次制证已作废（已签发的证书会被注销），请检查 UKey 和证书助手后重新制证。');
      // Tell CertHall first; only an attempt it really ended may lose its
      // key pair from the token. A completed one (the answer to 确认 was
      // lost) keeps its key: the page reloads to show it.
      var report = s.attempt
        ? post('/counter/production/attempts/' + s.attempt + '/failed', { stage: s.stage, message: message })
        : Promise.resolve(null);
      return report.then(function (answer) {
        var state = answer && answer.attempt && answer.attempt.state;
        if (state === 'completed') {
          window.location.reload();
          return null;
        }
        if ((state === 'failed' || state === 'abandoned') && s.keyId && s.pin) {
          return agent.deleteKey(s.tokenId, s.keyId, s.pin).catch(function () { return null; });
        }
        return null;
      }, function () { return null; }).then(function () {
        s.pin = null;
        busy = false;
        refreshBtn.disabled = false;
        return refresh();
      });
    }
  }

  refreshBtn.addEventListener('click', function () { errorBox.hidden = true; refresh(); });
  startBtn.addEventListener('click', run);
  refresh();
})();

/*
 * The demo relying platform's page (/dev/platform): what a trading
 * platform's page does to activate a certificate (docs/relying-platform.md).
 *
 *   the platform's server gets a challenge from CertHall → the agent signs
 *   it with the chosen certificate's key (purpose "activate", this page's
 *   origin) → the platform's server hands the signed answer to CertHall's
 *   activation API → CertHall's verdict is shown.
 */
(function () {
  'use strict';
  var root = document.getElementById('platform');
  if (!root) return;
  var agent = new window.CertHallAgent(root.dataset.agentUrl);
  var app = root.dataset.app;
  var post = function (path, body) { return window.CertHallPortal.post(path, body, root.dataset.csrf); };
  var q = function (id) { return root.querySelector('[data-testid="' + id + '"]'); };
  var statusBox = q('agent-status');
  var list = q('platform-certs');
  var activateBtn = q('activate');
  var resultBox = q('activation-result');
  var errorBox = q('activation-error');
  var pinInput = root.querySelector('#pin');
  var found = [];
  var busy = false;

  function chosen() {
    var r = list.querySelector('input[name="cert"]:checked');
    return r ? found[Number(r.value)] : null;
  }

  function update() {
    activateBtn.disabled = busy || !chosen() || !pinInput.value;
  }

  function render() {
    list.innerHTML = '';
    var legend = document.createElement('legend');
    legend.textContent = 'UKey 中的证书';
    list.appendChild(legend);
    if (!found.length) {
      var p = document.createElement('p');
      p.className = 'muted';
      p.textContent = '未在 UKey 中找到证书。';
      list.appendChild(p);
    }
    found.forEach(function (f, i) {
      var label = document.createElement('label');
      label.className = 'token';
      label.setAttribute('data-testid', 'platform-cert');
      label.setAttribute('data-serial', f.cert.serial);
      var radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'cert';
      radio.value = String(i);
      radio.addEventListener('change', update);
      if (found.length === 1) radio.checked = true;
      label.appendChild(radio);
      label.appendChild(document.createTextNode(' ' + (f.cert.common_name || f.cert.subject) +
        ' · 序列号 ' + f.cert.serial + ' · 有效期至 ' + String(f.cert.not_after).slice(0, 10)));
      list.appendChild(label);
    });
    update();
  }

  function refresh() {
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

  function activate() {
    var f = chosen();
    if (!f || busy) return;
    busy = true;
    update();
    resultBox.hidden = true;
    errorBox.hidden = true;
    var pin = pinInput.value;
    post('/dev/platform/' + encodeURIComponent(app) + '/challenge', {})
      .then(function (c) {
        return agent.sign(f.token.id, f.cert.key_id, pin, c.challenge, 'activate').then(function (signed) {
          return post('/dev/platform/' + encodeURIComponent(app) + '/activate', {
            challenge: c.challenge,
            certificate: signed.certificate,
            signed_data: signed.signed_data,
            signature: signed.signature
          });
        });
      })
      .then(function (status) {
        resultBox.textContent = '激活成功：证书 ' + status.serial + ' 已在本平台激活（' +
          String(status.activated_at).replace('T', ' ').slice(0, 19) + '），有效期至 ' +
          String(status.not_after).slice(0, 10) + '。';
        resultBox.setAttribute('data-serial', status.serial);
        resultBox.hidden = false;
      }, function (e) {
        errorBox.textContent = '激活失败：' + ((e && e.message) || '未知错误');
        errorBox.setAttribute('data-code', (e && e.code) || '');
        errorBox.hidden = false;
      })
      .then(function () {
        pin = null;
        busy = false;
        update();
      });
  }

  pinInput.addEventListener('input', update);
  q('refresh-certs').addEventListener('click', refresh);
  activateBtn.addEventListener('click', activate);
  refresh();
})();

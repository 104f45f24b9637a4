/*
 * 数字证书登录 on the login page: lists the certificates the agent finds,
 * asks the server for a challenge, has the key sign it, posts the answer.
 * The PIN goes to the local agent only; the form posted to CertHall carries
 * the challenge, the certificate and the signature.
 */
(function () {
  'use strict';

  function $(id) { return document.getElementById(id); }

  function formatDate(iso) { return iso ? iso.slice(0, 10) : ''; }

  document.addEventListener('DOMContentLoaded', function () {
    var panel = $('cert-panel');
    if (!panel || !window.CertHallAgent) { return; }
    var agent = new window.CertHallAgent(panel.getAttribute('data-agent-url'));
    var form = $('cert-form');
    var list = $('cert-list');
    var status = $('agent-status');
    var missing = $('agent-missing');
    var errorBox = panel.querySelector('[data-testid="cert-error"]');
    var pinInput = $('cert-pin');
    var submit = $('cert-submit');
    var csrf = form.querySelector('input[name="_csrf"]').value;
    var found = [];
    var loaded = false;

    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = !message;
    }

    function setStatus(message) {
      status.textContent = message;
      status.hidden = !message;
    }

    function render(certs) {
      Array.prototype.slice.call(list.querySelectorAll('.cert-option')).forEach(function (n) { n.remove(); });
      certs.forEach(function (entry, i) {
        var c = entry.cert;
        var expired = c.not_after && new Date(c.not_after) < new Date();
        var label = document.createElement('label');
        label.className = 'cert-option' + (expired ? ' expired' : '');
        label.setAttribute('data-testid', 'cert-option');
        var radio = document.createElement('input');
        radio.type = 'radio';
        radio.name = 'cert-choice';
        radio.value = String(i);
        if (certs.length === 1) { radio.checked = true; }
        var text = document.createElement('span');
        var title = document.createElement('strong');
        title.textContent = c.common_name || c.subject;
        var meta = document.createElement('small');
        var issuer = (/(?:^|,)CN=([^,]+)/.exec(c.issuer) || [])[1] || c.issuer;
        meta.textContent = '颁发者：' + issuer + '；有效期至 ' + formatDate(c.not_after) +
          (expired ? '（已过期）' : '') + '；介质：' + entry.token.label;
        text.appendChild(title);
        text.appendChild(meta);
        label.appendChild(radio);
        label.appendChild(text);
        list.appendChild(label);
      });
    }

    function load() {
      loaded = true;
      setStatus('正在读取 UKey 中的证书…');
      missing.hidden = true;
      return agent.tokens().then(function (answer) {
        found = window.CertHallAgent.certificates(answer);
        var tokens = answer.tokens || [];
        if (!tokens.length) {
          setStatus('证书助手已启动，但没有检测到 UKey。请插入 UKey 后点击“重新检测”。');
          missing.hidden = true;
          form.hidden = true;
          return;
        }
        if (!found.length) {
          setStatus('插入的 UKey 中没有证书。请确认插入的是已办理证书的 UKey。');
          form.hidden = true;
          return;
        }
        setStatus(found.length === 1 ? '' : '检测到 ' + found.length + ' 张证书，请选择。');
        render(found);
        form.hidden = false;
      }, function (err) {
        form.hidden = true;
        if (err.code === 'agent_unreachable') {
          setStatus('');
          missing.hidden = false;
        } else {
          setStatus(err.message);
        }
      });
    }

    function post(path, fields) {
      var body = new URLSearchParams();
      body.set('_csrf', csrf);
      Object.keys(fields).forEach(function (k) {
        if (fields[k] !== undefined && fields[k] !== null) { body.set(k, String(fields[k])); }
      });
      return fetch(path, { method: 'POST', body: body, credentials: 'same-origin' }).then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (data) {
          if (!resp.ok) {
            throw new Error(data.message || (resp.status === 403
              ? '页面已过期，请刷新页面后重试。'
              : '服务器暂时无法处理，请稍后重试。'));
          }
          return data;
        });
      });
    }

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      showError('');
      var choice = form.querySelector('input[name="cert-choice"]:checked');
      if (!choice) { showError('请选择一张证书。'); return; }
      var pin = pinInput.value;
      if (!pin) { showError('请输入 UKey 的 PIN 码。'); pinInput.focus(); return; }
      var entry = found[Number(choice.value)];
      submit.disabled = true;
      submit.textContent = '正在登录…';
      var challenge;
      post('/login/cert/challenge', {}).then(function (issued) {
        challenge = issued.challenge;
        return agent.sign(entry.token.id, entry.cert.key_id, pin, challenge);
      }).then(function (answer) {
        pinInput.value = '';
        form.elements.challenge.value = challenge;
        form.elements.certificate.value = answer.certificate || entry.cert.certificate;
        form.elements.signed_data.value = answer.signed_data;
        form.elements.signature.value = answer.signature;
        form.submit();
      }).catch(function (err) {
        pinInput.value = '';
        submit.disabled = false;
        submit.textContent = '登录';
        if (err && (err.code === 'wrong_pin' || err.code === 'pin_locked') && challenge) {
          // The server records the refusal and says what to show.
          return post('/login/cert/failure', {
            challenge: challenge,
            code: err.code,
            retries_left: typeof err.details.retries_left === 'number' ? err.details.retries_left : undefined
          }).then(function (recorded) { showError(recorded.message || err.message); },
            function (e) { showError(e.message || err.message); });
        }
        showError((err && err.message) || '登录失败，请重试。');
        if (err && err.code === 'agent_unreachable') { load(); }
      });
    });

    $('agent-retry').addEventListener('click', load);

    // Tabs: switch without reloading.
    Array.prototype.slice.call(document.querySelectorAll('[data-tab]')).forEach(function (tab) {
      tab.addEventListener('click', function (ev) {
        ev.preventDefault();
        var which = tab.getAttribute('data-tab');
        document.querySelectorAll('[data-tab]').forEach(function (t) {
          var on = t === tab;
          t.classList.toggle('active', on);
          t.setAttribute('aria-selected', on ? 'true' : 'false');
        });
        $('sms-panel').hidden = which !== 'sms';
        panel.hidden = which !== 'cert';
        if (which === 'cert' && !loaded) { load(); }
      });
    });
    if (!panel.hidden) { load(); }
  });
})();

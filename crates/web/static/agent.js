/*
 * CertHall 证书助手 client: the one module every page that needs the USB key
 * uses to talk to the local key agent (docs/agent.md). No dependencies.
 *
 *   const agent = new CertHallAgent('http://127.0.0.1:17845');
 *   const { tokens } = await agent.tokens();
 *   const answer = await agent.sign(token.id, cert.key_id, pin, challenge);
 *
 * Every failure is an AgentError with a stable `code` (the agent's, or
 * `agent_unreachable` when no agent answers) and a Chinese `message` fit to
 * show as is. PINs are passed through, never stored.
 */
(function () {
  'use strict';

  function AgentError(code, message, details) {
    this.name = 'AgentError';
    this.code = code;
    this.message = message;
    this.details = details || {};
  }
  AgentError.prototype = Object.create(Error.prototype);
  AgentError.prototype.constructor = AgentError;

  var UNREACHABLE = '未检测到证书助手。请确认证书助手已启动，然后重试。';

  function CertHallAgent(url) {
    this.url = String(url || 'http://127.0.0.1:17845').replace(/\/+$/, '');
  }

  CertHallAgent.prototype.request = function (method, path, body) {
    var init = { method: method, mode: 'cors', credentials: 'omit', cache: 'no-store', headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(this.url + path, init).then(
      function (resp) {
        return resp.json().then(
          function (data) { return { resp: resp, data: data }; },
          function () { return { resp: resp, data: {} }; }
        );
      },
      function () { throw new AgentError('agent_unreachable', UNREACHABLE); }
    ).then(function (r) {
      if (!r.resp.ok) {
        throw new AgentError(
          r.data.code || 'agent_error',
          r.data.message || ('证书助手返回错误（' + r.resp.status + '）。'),
          r.data
        );
      }
      return r.data;
    });
  };

  function tokenPath(tokenId) { return '/v1/tokens/' + encodeURIComponent(tokenId); }
  function keyPath(tokenId, keyId) { return tokenPath(tokenId) + '/keys/' + encodeURIComponent(keyId); }

  /** Agent version and backends. */
  CertHallAgent.prototype.status = function () { return this.request('GET', '/v1/status'); };
  /** Media query (介质查询): tokens and their certificates. */
  CertHallAgent.prototype.tokens = function () { return this.request('GET', '/v1/tokens'); };
  CertHallAgent.prototype.verifyPin = function (tokenId, pin) {
    return this.request('POST', tokenPath(tokenId) + '/pin/verify', { pin: pin });
  };
  CertHallAgent.prototype.changePin = function (tokenId, pin, newPin) {
    return this.request('POST', tokenPath(tokenId) + '/pin/change', { pin: pin, new_pin: newPin });
  };
  CertHallAgent.prototype.unblockPin = function (tokenId, soPin, newPin) {
    return this.request('POST', tokenPath(tokenId) + '/pin/unblock', { so_pin: soPin, new_pin: newPin });
  };
  /** A key pair in the token; resolves to { key, csr (PEM) }. */
  CertHallAgent.prototype.generateKey = function (tokenId, pin, algorithm, label, subject) {
    return this.request('POST', tokenPath(tokenId) + '/keys',
      { pin: pin, algorithm: algorithm, label: label, subject: subject });
  };
  CertHallAgent.prototype.storeCertificate = function (tokenId, keyId, pin, certificate, chain) {
    return this.request('POST', keyPath(tokenId, keyId) + '/certificate',
      { pin: pin, certificate: certificate, chain: chain || [] });
  };
  CertHallAgent.prototype.deleteKey = function (tokenId, keyId, pin) {
    return this.request('POST', keyPath(tokenId, keyId) + '/delete', { pin: pin });
  };
  /** Signs a server challenge; resolves to { signature, signed_data, certificate, algorithm }. */
  CertHallAgent.prototype.sign = function (tokenId, keyId, pin, challenge, purpose) {
    return this.request('POST', keyPath(tokenId, keyId) + '/sign',
      { pin: pin, challenge: challenge, purpose: purpose || 'login' });
  };

  /** Every certificate of every token, flattened, with its token. */
  CertHallAgent.certificates = function (tokensAnswer) {
    var out = [];
    (tokensAnswer.tokens || []).forEach(function (token) {
      (token.certificates || []).forEach(function (cert) { out.push({ token: token, cert: cert }); });
    });
    return out;
  };

  /** The one-time key for an online PIN unlock; resolves to { public_key }. */
  CertHallAgent.prototype.unlockKey = function (tokenId) {
    return this.request('POST', tokenPath(tokenId) + '/unlock/key', {});
  };
  /** Opens CertHall's sealed SO PIN, sets newPin, rotates the SO PIN; resolves to { so_pin_rotated }. */
  CertHallAgent.prototype.unlockSealed = function (tokenId, sealed, newPin) {
    return this.request('POST', tokenPath(tokenId) + '/unlock', { sealed: sealed, new_pin: newPin });
  };

  /** Serials compared as CertHall stores them (lower-case hex, no leading zeros). */
  CertHallAgent.sameSerial = function (a, b) {
    function norm(s) { return String(s || '').toLowerCase().replace(/^0+/, ''); }
    return norm(a) === norm(b);
  };

  /**
   * POST JSON to CertHall itself (same origin, session cookie, the page's
   * CSRF token); rejects with an Error carrying CertHall's `code` and
   * Chinese `message`.
   */
  function portalPost(path, body, csrf) {
    return fetch(path, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var e = new Error(data.message || ('网上营业厅返回错误（' + resp.status + '）'));
          e.code = data.code || 'error';
          throw e;
        }
        return data;
      });
    }, function () {
      var e = new Error('无法连接网上营业厅，请检查网络后重试。');
      e.code = 'network';
      throw e;
    });
  }

  /**
   * Asks CertHall to send a confirmation SMS code (POST `path`), says what
   * happened in `statusEl`, and calls `ready` once another may be asked
   * for (at once after a refusal).
   */
  function sendCode(path, csrf, statusEl, ready) {
    statusEl.textContent = '正在发送…';
    return portalPost(path, {}, csrf).then(function (sent) {
      statusEl.textContent = '验证码已发送至 ' + sent.phone + '，' + sent.valid_minutes + ' 分钟内有效。';
      window.setTimeout(ready, sent.resend_after_secs * 1000);
    }, function (e) {
      statusEl.textContent = e.message;
      ready();
    });
  }

  /**
   * The stages of a run, shown in `progress` (an element whose children
   * carry `data-stage`): `start()` shows it unmarked; `step(run, name, fn)`
   * is a promise step that records `name` as `run.stage`, marks it running
   * and, once `fn`'s result resolves, done; `fail(run)` marks the current
   * stage failed and returns its label.
   */
  function Stages(progress) { this.progress = progress; }
  Stages.prototype.item = function (stage) {
    return this.progress.querySelector('[data-stage="' + stage + '"]');
  };
  Stages.prototype.mark = function (stage, state) {
    var li = this.item(stage);
    if (li) li.setAttribute('data-state', state);
  };
  Stages.prototype.start = function () {
    this.progress.hidden = false;
    Array.prototype.forEach.call(this.progress.children, function (li) { li.removeAttribute('data-state'); });
  };
  Stages.prototype.step = function (run, name, fn) {
    var self = this;
    return function (prev) {
      run.stage = name;
      self.mark(name, 'running');
      return Promise.resolve(fn(prev)).then(function (v) { self.mark(name, 'done'); return v; });
    };
  };
  Stages.prototype.fail = function (run) {
    this.mark(run.stage, 'failed');
    return (this.item(run.stage) || {}).textContent;
  };

  window.CertHallAgent = CertHallAgent;
  window.CertHallPortal = { post: portalPost, sendCode: sendCode, Stages: Stages };
  window.AgentError = AgentError;
})();

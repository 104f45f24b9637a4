/*
 * PIN 解锁: drives the applicant's key agent through an online unlock
 * (crates/service/src/pin_unlock.rs):
 *
 *   the agent makes a one-time key → CertHall checks the SMS code and
 *   answers the SO PINs sealed to that key (this page cannot open them) →
 *   the agent opens them, sets the new PIN and rotates the SO PIN → the
 *   page reports the outcome.
 *
 * The new PIN goes only to the agent.
 */
(function () {
  'use strict';
  var root = document.getElementById('unlock');
  if (!root) return;
  var agent = new window.CertHallAgent(root.dataset.agentUrl);
  var post = function (path, body) { return window.CertHallPortal.post(path, body, root.dataset.csrf); };
  var q = function (id) { return root.querySelector('[data-testid="' + id + '"]'); };
  var statusBox = q('agent-status');
  var list = q('unlock-tokens');
  var sendBtn = q('send-code');
  var codeStatus = q('code-status');
  var startBtn = q('start-unlock');
  var progress = q('unlock-progress');
  var stages = new window.CertHallPortal.Stages(progress);
  var errorBox = q('unlock-error');
  var doneBox = q('unlock-done');
  var codeInput = root.querySelector('#code');
  var pinInput = root.querySelector('#new-pin');
  var againInput = root.querySelector('#new-pin-again');
  var mine = Array.prototype.map.call(q('account-ukeys').children, function (li) { return li.dataset.serial; });
  var tokens = [];
  var busy = false;

  function chosen() {
    var r = list.querySelector('input[name="token"]:checked');
    return r ? tokens[Number(r.value)] : null;
  }

  function update() {
    var t = chosen();
    sendBtn.disabled = busy || !t;
    startBtn.disabled = busy || !t || codeInput.value.length !== 6 || !pinInput.value || !againInput.value;
  }

  function render() {
    list.innerHTML = '';
    var legend = document.createElement('legend');
    legend.textContent = '本机 UKey';
    list.appendChild(legend);
    if (!tokens.length) {
      var p = document.createElement('p');
      p.className = 'muted';
      p.textContent = '未检测到 UKey，请插入后点击“重新查询”。';
      list.appendChild(p);
    }
    // The only key of this account on the PC is chosen for the applicant.
    var ours = tokens.filter(function (t) { return mine.indexOf(t.serial) >= 0; });
    tokens.forEach(function (t, i) {
      var label = document.createElement('label');
      label.className = 'token';
      label.setAttribute('data-testid', 'unlock-token');
      label.setAttribute('data-serial', t.serial);
      var radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'token';
      radio.value = String(i);
      radio.setAttribute('data-testid', 'unlock-choice');
      var own = mine.indexOf(t.serial) >= 0;
      var pin = t.pin || {};
      var note;
      if (!own) {
        note = '不是本系统为当前账号制作的 UKey，无法在线解锁，请到柜台办理';
        radio.disabled = true;
      } else if (pin.locked) {
        note = 'PIN 已锁定，可以解锁';
      } else {
        note = 'PIN 未锁定' + (pin.retries_left != null ? '（还可尝试 ' + pin.retries_left + ' 次）' : '') +
          '；忘记 PIN 码也可以在此重设';
      }
      radio.addEventListener('change', update);
      if (!radio.disabled && ours.length === 1) radio.checked = true;
      label.appendChild(radio);
      label.appendChild(document.createTextNode(' ' + (t.label || 'UKey') + ' · 序列号 ' + t.serial + ' · '));
      var status = document.createElement('span');
      status.setAttribute('data-testid', 'unlock-status');
      status.textContent = note;
      label.appendChild(status);
      list.appendChild(label);
    });
    update();
  }

  function refresh() {
    statusBox.textContent = '正在查询 UKey…';
    return agent.tokens().then(function (answer) {
      tokens = (answer.tokens || []).filter(function (t) { return t.initialized !== false; });
      statusBox.textContent = '证书助手已连接，检测到 ' + tokens.length + ' 把 UKey。';
      render();
    }, function (e) {
      tokens = [];
      statusBox.textContent = e.message;
      render();
    });
  }

  sendBtn.addEventListener('click', function () {
    var t = chosen();
    if (!t) return;
    sendBtn.disabled = true;
    window.CertHallPortal.sendCode(
      '/api/v1/ukeys/' + encodeURIComponent(t.serial) + '/unlock/code',
      root.dataset.csrf, codeStatus, update);
  });

  function run() {
    var t = chosen();
    if (!t || busy) return;
    errorBox.hidden = true;
    doneBox.hidden = true;
    if (pinInput.value !== againInput.value) {
      errorBox.textContent = '两次输入的新 PIN 码不一致，请重新输入。';
      errorBox.hidden = false;
      return;
    }
    busy = true;
    update();
    stages.start();
    var s = { stage: 'key', unlock: null, newPin: pinInput.value };

    function step(name, fn) { return stages.step(s, name, fn); }

    Promise.resolve()
      .then(step('key', function () { return agent.unlockKey(t.id); }))
      .then(step('release', function (key) {
        return post('/api/v1/ukeys/' + encodeURIComponent(t.serial) + '/unlocks',
          { agent_key: key.public_key, code: codeInput.value });
      }))
      .then(step('unlock', function (released) {
        s.unlock = released.unlock_id;
        return agent.unlockSealed(t.id, released.sealed, s.newPin);
      }))
      .then(step('report', function (answer) {
        return post('/api/v1/unlocks/' + s.unlock + '/result', {
          ok: !!answer.so_pin_rotated,
          message: answer.so_pin_rotated ? '' : '已设置新 PIN 码，但管理员密码未能更换'
        });
      }))
      .then(function () {
        s.newPin = null;
        pinInput.value = '';
        againInput.value = '';
        codeInput.value = '';
        doneBox.hidden = false;
        busy = false;
        return refresh();
      }, function (e) {
        var label = stages.fail(s);
        errorBox.textContent = '“' + label + '”未完成：' + ((e && e.message) || '解锁失败。');
        errorBox.hidden = false;
        var report = s.unlock && s.stage === 'unlock'
          ? post('/api/v1/unlocks/' + s.unlock + '/result', { ok: false, message: (e && e.message) || '' })
          : Promise.resolve(null);
        return report.catch(function () { return null; }).then(function () {
          s.newPin = null;
          busy = false;
          return refresh();
        });
      });
  }

  [codeInput, pinInput, againInput].forEach(function (el) { el.addEventListener('input', update); });
  q('refresh-tokens').addEventListener('click', function () { errorBox.hidden = true; refresh(); });
  startBtn.addEventListener('click', run);
  refresh();
})();

// CertHall page helpers. Pages work without this script; it only adds
// conveniences. No external scripts are ever loaded.
(function () {
  "use strict";

  // Resend countdown on the "获取验证码" button.
  function countdown(button) {
    var left = parseInt(button.getAttribute("data-resend-after") || "0", 10);
    if (!(left > 0)) return;
    var label = button.textContent;
    button.disabled = true;
    function tick() {
      if (left <= 0) {
        button.disabled = false;
        button.textContent = "重新获取";
        return;
      }
      button.textContent = label === "获取验证码" ? "重新获取(" + left + "s)" : label;
      left -= 1;
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  // Client-side check of the phone before asking for a code (the server
  // checks again); keeps the user's input and explains in Chinese.
  function phoneCheck(form) {
    var send = form.querySelector("#send-code");
    var phone = form.querySelector("#phone");
    if (!send || !phone) return;
    send.addEventListener("click", function (ev) {
      var digits = phone.value.replace(/[\s-]/g, "").replace(/^\+?86(?=1\d{10}$)/, "");
      if (!/^1[3-9]\d{9}$/.test(digits)) {
        ev.preventDefault();
        phone.setCustomValidity("请输入正确的11位中国大陆手机号码。");
        phone.reportValidity();
      } else {
        phone.setCustomValidity("");
      }
    });
    phone.addEventListener("input", function () { phone.setCustomValidity(""); });
  }

  // Image fields: a file over the limit is named at once, before minutes
  // of uploading it (the server checks everything again).
  function imageSizeCheck(input) {
    var limit = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
    if (!(limit > 0)) return;
    input.addEventListener("change", function () {
      var f = input.files && input.files[0];
      if (f && f.size > limit) {
        var mb = (f.size / 1048576).toFixed(1);
        input.setCustomValidity("图片文件过大（" + mb + " MB），请选择不超过 " +
          Math.round(limit / 1048576) + " MB 的图片。");
        input.reportValidity();
        input.value = "";
      } else {
        input.setCustomValidity("");
      }
    });
  }

  // Forms whose answer takes a while (uploading images, reading a license
  // by OCR): the page shows it is working and submits once. The clicked
  // button's name and value still go with the form (a disabled button's
  // would not).
  function busyForm(form) {
    form.addEventListener("submit", function (ev) {
      if (form.getAttribute("data-busy") === "1") {
        ev.preventDefault();
        return;
      }
      form.setAttribute("data-busy", "1");
      var submitter = ev.submitter;
      if (submitter && submitter.name) {
        var carried = document.createElement("input");
        carried.type = "hidden";
        carried.name = submitter.name;
        carried.value = submitter.value;
        carried.setAttribute("data-carried", "");
        form.appendChild(carried);
      }
      var reading = !!(submitter && submitter.value === "read");
      var status = form.querySelector("[data-busy-status]");
      if (status) {
        status.textContent = reading
          ? "正在上传并识别营业执照，请稍候（通常需要几秒钟），请勿关闭或刷新页面…"
          : "正在上传并保存，请稍候…";
        status.hidden = false;
      }
      var buttons = form.querySelectorAll("button[type=submit]");
      for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
      if (submitter && reading) submitter.textContent = "正在识别…";
    });
    // Back from the browser's cache: usable again.
    window.addEventListener("pageshow", function (ev) {
      if (!ev.persisted) return;
      form.removeAttribute("data-busy");
      var carried = form.querySelectorAll("input[data-carried]");
      for (var c = 0; c < carried.length; c++) carried[c].remove();
      var buttons = form.querySelectorAll("button[type=submit]");
      for (var i = 0; i < buttons.length; i++) buttons[i].disabled = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var busy = document.querySelectorAll("form[data-busy-form]");
    for (var b = 0; b < busy.length; b++) busyForm(busy[b]);
    var print = document.querySelector("[data-print]");
    if (print) print.addEventListener("click", function () { window.print(); });
    var files = document.querySelectorAll("input[type=file][data-max-bytes]");
    for (var i = 0; i < files.length; i++) imageSizeCheck(files[i]);
    var send = document.getElementById("send-code");
    if (send) countdown(send);
    var form = document.getElementById("login-form");
    if (form) phoneCheck(form);
  });
})();

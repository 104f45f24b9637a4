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

  document.addEventListener("DOMContentLoaded", function () {
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

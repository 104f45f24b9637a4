// 第六步: cascading province / city / district selects (GB/T 2260 table
// from /static/divisions.json), the address book filling the fields, the
// invoice fields shown for the chosen kind, and the total for the chosen
// key model. The page works without this script (the server checks all).
(function () {
  "use strict";
  var tree = null;

  function fill(select, items, placeholder, selected) {
    select.innerHTML = "";
    var first = document.createElement("option");
    first.value = "";
    first.textContent = placeholder;
    select.appendChild(first);
    items.forEach(function (it) {
      var o = document.createElement("option");
      o.value = String(it[0]);
      o.textContent = it[1];
      if (String(it[0]) === String(selected)) o.selected = true;
      select.appendChild(o);
    });
  }

  function find(list, code) {
    for (var i = 0; i < list.length; i++) if (String(list[i][0]) === String(code)) return list[i];
    return null;
  }

  // A city without districts (东莞市) is its own leaf.
  function districtsOf(city) {
    return city[2].length ? city[2] : [[city[0], city[1]]];
  }

  function setDivision(code) {
    if (!tree) return;
    var province = document.getElementById("province");
    var city = document.getElementById("city");
    var district = document.getElementById("division");
    code = String(code || "");
    for (var i = 0; i < tree.length; i++) {
      for (var j = 0; j < tree[i][2].length; j++) {
        var c = tree[i][2][j];
        var ds = districtsOf(c);
        if (find(ds, code)) {
          fill(province, tree, "请选择省", tree[i][0]);
          fill(city, tree[i][2], "请选择市", c[0]);
          fill(district, ds, "请选择区县", code);
          return;
        }
      }
    }
  }

  function cascade() {
    var province = document.getElementById("province");
    var city = document.getElementById("city");
    var district = document.getElementById("division");
    if (!province || !city || !district) return;
    var row = province.closest("[data-divisions]");
    fetch(row.getAttribute("data-divisions"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        tree = data;
        province.addEventListener("change", function () {
          var p = find(tree, province.value);
          fill(city, p ? p[2] : [], "请选择市", "");
          fill(district, [], "请选择区县", "");
          if (p && p[2].length === 1) {
            city.value = String(p[2][0][0]);
            city.dispatchEvent(new Event("change"));
          }
        });
        city.addEventListener("change", function () {
          var p = find(tree, province.value);
          var c = p ? find(p[2], city.value) : null;
          var ds = c ? districtsOf(c) : [];
          fill(district, ds, "请选择区县", ds.length === 1 ? ds[0][0] : "");
        });
      })
      .catch(function () { /* the server-rendered selects remain */ });
  }

  function addressBook() {
    var radios = document.querySelectorAll("input[name=address_choice]");
    var fields = document.querySelector(".new-address");
    function apply() {
      var chosen = document.querySelector("input[name=address_choice]:checked");
      if (!chosen || !fields) return;
      var isNew = chosen.value === "new";
      fields.classList.toggle("from-book", !isNew);
      if (!isNew) {
        document.getElementById("recipient").value = chosen.getAttribute("data-recipient");
        document.getElementById("phone").value = chosen.getAttribute("data-phone");
        document.getElementById("street").value = chosen.getAttribute("data-street");
        setDivision(chosen.getAttribute("data-division"));
      }
    }
    for (var i = 0; i < radios.length; i++) radios[i].addEventListener("change", apply);
    // Typing in the fields means a new address.
    if (fields) {
      fields.addEventListener("input", function () {
        var n = document.querySelector("input[name=address_choice][value=new]");
        if (n && n.type === "radio") n.checked = true;
        fields.classList.remove("from-book");
      });
    }
  }

  function invoice() {
    var radios = document.querySelectorAll("input[name=invoice_kind]");
    function apply() {
      var c = document.querySelector("input[name=invoice_kind]:checked");
      var kind = c ? c.value : "none";
      document.querySelectorAll("[data-invoice=any]").forEach(function (el) { el.hidden = kind === "none"; });
      document.querySelectorAll("[data-invoice=special]").forEach(function (el) { el.hidden = kind !== "special"; });
    }
    for (var i = 0; i < radios.length; i++) radios[i].addEventListener("change", apply);
    apply();
  }

  function total() {
    var out = document.getElementById("total");
    var keyOut = document.getElementById("key-price");
    if (!out) return;
    var app = parseInt(out.getAttribute("data-application-fen") || "0", 10);
    function yuan(fen) { return Math.floor(fen / 100) + "." + ("0" + (fen % 100)).slice(-2); }
    function apply() {
      var c = document.querySelector("input[name=key_model]:checked");
      var key = c ? parseInt(c.getAttribute("data-price-fen") || "0", 10) : 0;
      out.textContent = yuan(app + key);
      if (keyOut) keyOut.textContent = yuan(key);
    }
    document.querySelectorAll("input[name=key_model]").forEach(function (r) { r.addEventListener("change", apply); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    cascade();
    addressBook();
    invoice();
    total();
    var form = document.querySelector("[data-testid=checkout-form]");
    if (form) form.addEventListener("submit", function () {
      var b = form.querySelector("[data-testid=confirm-checkout]");
      if (b) { b.disabled = true; b.textContent = "正在提交…"; }
    });
  });
})();

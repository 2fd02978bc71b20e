/* Scan mode for the back-office line forms (cycle count, transfer, receiving).
 *
 * Progressive enhancement of the server-side formset in backoffice/_lines.html
 * (`table[data-scan-lines]`): without this file the form works as before.
 * With it:
 *   - one input has focus; a scanner (or a keyboard) types a SKU or barcode and
 *     Enter: the line is added, or its quantity goes up by one;
 *   - Enter in the scan input, or in a quantity, never submits the form;
 *   - every scan is confirmed on screen (and by a short beep, WebAudio); an
 *     unknown code is an inline error on that scan and nothing is added;
 *   - a running list (the formset rows themselves, quantities editable) with
 *     totals, "Undo last scan", and remove per line;
 *   - the list is kept in sessionStorage per page, so a purchase order's pages
 *     can be browsed while scanning; it is cleared when the form is submitted.
 * SKUs are looked up by GET <data-lookup>?code=…[&po=…] (backoffice.views.lookup_view).
 *
 * One more field per line (the returns dock's disposition): `data-extra="disposition"`
 * names it, `data-extra-template` the <template> holding its <select> (name
 * lines-__i__-disposition), `data-extra-mode` the <select> saying which value a scan
 * goes to: a scan adds to the line of that SKU *and* that value, else a new line.
 * `data-storage` (the return id) keys the kept list, so a new return starts empty.
 */
(function () {
  "use strict";

  var audio = null;
  function beep(ok) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.frequency.value = ok ? 880 : 220;
      gain.gain.value = 0.08;
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + (ok ? 0.08 : 0.25));
    } catch (e) {
      /* no audio: the on-screen confirmation is enough */
    }
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function ScanList(table) {
    this.table = table;
    this.form = table.closest("form");
    this.body = table.tBodies[0];
    this.lookup = table.getAttribute("data-lookup");
    this.po = table.getAttribute("data-po") || "";
    this.prefix = "lines";
    this.total = this.form.querySelector("#id_" + this.prefix + "-TOTAL_FORMS");
    this.storageKey = "scan:" + location.pathname + ":" + (this.form.id || "form") + ":" + (table.getAttribute("data-storage") || "");
    this.extra = table.getAttribute("data-extra") || "";
    this.extraTemplate = document.getElementById(table.getAttribute("data-extra-template") || "");
    this.extraMode = document.getElementById(table.getAttribute("data-extra-mode") || "");
    this.undo = [];
    this.queue = Promise.resolve();
    this.busy = 0;
    this.build();
  }

  ScanList.prototype.build = function () {
    var self = this;
    var panel = el("div", { class: "scan-panel", id: "scan-panel" });
    var label = el("label", { for: "scan-input" }, "Scan or type a SKU or barcode, then Enter");
    this.input = el("input", {
      id: "scan-input",
      type: "text",
      autocomplete: "off",
      autocapitalize: "off",
      spellcheck: "false",
      enterkeyhint: "enter",
      "aria-describedby": "scan-status",
    });
    this.undoButton = el("button", { type: "button", id: "scan-undo", class: "button" }, "Undo last scan");
    this.status = el("p", { id: "scan-status", role: "status", "aria-live": "polite" }, "Ready to scan.");
    this.totals = el("p", { id: "scan-totals" });
    var row = el("div", { class: "scan-row" });
    row.appendChild(this.input);
    row.appendChild(this.undoButton);
    panel.appendChild(label);
    panel.appendChild(row);
    panel.appendChild(this.status);
    panel.appendChild(this.totals);
    this.table.parentNode.insertBefore(panel, this.table);
    this.table.classList.add("scan-mode");
    var head = this.table.tHead.rows[0];
    head.insertBefore(el("th", {}, "Product"), head.cells[1]);
    head.appendChild(el("th", {}, ""));

    // Keep the rows the server sent back filled in (a refused preview); drop the blanks.
    var kept = [];
    Array.prototype.slice.call(this.body.rows).forEach(function (tr) {
      var sku = tr.querySelector("input[name$='-sku']");
      if (sku && sku.value.trim()) {
        kept.push(tr);
        self.decorate(tr, "");
      } else {
        tr.remove();
      }
    });
    if (!kept.length) this.restore();
    this.renumber();

    this.input.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") return;
      event.preventDefault();
      var code = self.input.value.trim();
      self.input.value = "";
      if (code) self.enqueue(code);
    });
    this.body.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target.tagName === "INPUT") {
        event.preventDefault(); // a scanner aimed at a quantity must not submit half a form
        self.input.focus();
      }
    });
    this.body.addEventListener("input", function () {
      self.renumber();
    });
    this.body.addEventListener("change", function () {
      self.renumber();
    });
    this.undoButton.addEventListener("click", function () {
      self.undoLast();
      self.input.focus();
    });
    this.form.addEventListener("submit", function (event) {
      if (self.busy > 0) {
        // Scans still being looked up: submit once they are in the list.
        event.preventDefault();
        var submitter = event.submitter;
        self.queue.then(function () {
          self.form.requestSubmit(submitter || undefined);
        });
        return;
      }
      try {
        sessionStorage.removeItem(self.storageKey);
      } catch (e) {}
    });
    // A field the page asks to fill first (the dock's order id) keeps the focus.
    if (!document.querySelector("[autofocus]")) this.input.focus();
  };

  ScanList.prototype.decorate = function (tr, name) {
    var self = this;
    var sku = tr.querySelector("input[name$='-sku']");
    tr.setAttribute("data-sku", sku.value.trim());
    tr.classList.add("scan-line");
    var productCell = el("td", { class: "product" }, name || "");
    tr.insertBefore(productCell, tr.cells[1]);
    var qty = tr.querySelector("input[name$='-quantity']");
    qty.setAttribute("inputmode", "numeric");
    var remove = el("button", { type: "button", class: "button scan-remove", "aria-label": "Remove " + sku.value }, "Remove");
    remove.addEventListener("click", function () {
      self.undo.push({ sku: tr.getAttribute("data-sku"), before: Number(qty.value) || 0, name: productCell.textContent, extra: self.extraOf(tr) });
      tr.remove();
      self.renumber();
      self.say("Removed " + tr.getAttribute("data-sku") + ".", true);
      self.input.focus();
    });
    var cell = el("td", { class: "actions" });
    cell.appendChild(remove);
    tr.appendChild(cell);
  };

  ScanList.prototype.rows = function () {
    return Array.prototype.slice.call(this.body.querySelectorAll("tr.scan-line"));
  };

  ScanList.prototype.extraOf = function (tr) {
    var field = this.extra ? tr.querySelector("[name$='-" + this.extra + "']") : null;
    return field ? field.value : "";
  };

  ScanList.prototype.extraLabel = function (tr) {
    var field = tr.querySelector("select[name$='-" + this.extra + "']");
    return field && field.selectedOptions.length ? field.selectedOptions[0].textContent : this.extraOf(tr);
  };

  ScanList.prototype.mode = function () {
    return this.extraMode ? this.extraMode.value : "";
  };

  ScanList.prototype.find = function (code, extra) {
    var self = this;
    var upper = code.toUpperCase();
    var wanted = extra === undefined ? this.mode() : extra;
    return this.rows().filter(function (tr) {
      return (
        ((tr.getAttribute("data-sku") || "").toUpperCase() === upper ||
          (tr.getAttribute("data-barcode") || "") === code) &&
        (!self.extra || self.extraOf(tr) === wanted)
      );
    })[0];
  };

  ScanList.prototype.addRow = function (sku, name, barcode, quantity, extra) {
    var index = this.rows().length;
    var tr = el("tr", { class: "line" });
    var skuCell = el("td");
    var qtyCell = el("td", { class: "num" });
    var skuInput = el("input", { type: "text", name: this.prefix + "-" + index + "-sku", id: "id_" + this.prefix + "-" + index + "-sku", maxlength: "64", autocomplete: "off" });
    skuInput.value = sku;
    var qtyInput = el("input", { type: "number", name: this.prefix + "-" + index + "-quantity", id: "id_" + this.prefix + "-" + index + "-quantity", min: "0" });
    qtyInput.value = String(quantity);
    skuCell.appendChild(skuInput);
    qtyCell.appendChild(qtyInput);
    tr.appendChild(skuCell);
    tr.appendChild(qtyCell);
    if (this.extra && this.extraTemplate) {
      var extraCell = el("td", { class: "extra" });
      var field = this.extraTemplate.content.firstElementChild.cloneNode(true);
      field.name = field.name.replace("__i__", String(index));
      field.id = field.id.replace("__i__", String(index));
      field.value = extra === undefined ? this.mode() : extra;
      extraCell.appendChild(field);
      tr.appendChild(extraCell);
    }
    this.body.appendChild(tr);
    this.decorate(tr, name);
    if (barcode) tr.setAttribute("data-barcode", barcode);
    return tr;
  };

  ScanList.prototype.renumber = function () {
    var self = this;
    var units = 0;
    var rows = this.rows();
    rows.forEach(function (tr, index) {
      tr.querySelectorAll("input, select").forEach(function (input) {
        input.name = input.name.replace(/^lines-\d+-/, self.prefix + "-" + index + "-");
        input.id = input.id.replace(/^id_lines-\d+-/, "id_" + self.prefix + "-" + index + "-");
      });
      var qty = tr.querySelector("input[name$='-quantity']");
      units += Number(qty.value) || 0;
    });
    if (this.total) this.total.value = String(rows.length);
    this.totals.textContent = rows.length + " line(s), " + units + " unit(s)";
    this.undoButton.disabled = this.undo.length === 0;
    this.save();
  };

  ScanList.prototype.save = function () {
    var self = this;
    var data = this.rows().map(function (tr) {
      return {
        sku: tr.getAttribute("data-sku"),
        name: tr.querySelector("td.product").textContent,
        barcode: tr.getAttribute("data-barcode") || "",
        quantity: Number(tr.querySelector("input[name$='-quantity']").value) || 0,
        extra: self.extraOf(tr),
      };
    });
    try {
      sessionStorage.setItem(this.storageKey, JSON.stringify(data));
    } catch (e) {}
  };

  ScanList.prototype.restore = function () {
    var self = this;
    var data = [];
    try {
      data = JSON.parse(sessionStorage.getItem(this.storageKey) || "[]");
    } catch (e) {}
    data.forEach(function (line) {
      self.addRow(line.sku, line.name, line.barcode, line.quantity, self.extra ? line.extra : undefined);
    });
    if (data.length) this.say("Scanned lines kept from before: " + data.length + ".", true);
  };

  ScanList.prototype.say = function (text, ok) {
    this.status.textContent = text;
    this.status.className = ok ? "scan-ok" : "scan-error";
  };

  ScanList.prototype.bump = function (tr, code) {
    var qty = tr.querySelector("input[name$='-quantity']");
    var before = Number(qty.value) || 0;
    qty.value = String(before + 1);
    this.undo.push({ sku: tr.getAttribute("data-sku"), before: before, extra: this.extraOf(tr) });
    tr.classList.remove("scan-flash");
    void tr.offsetWidth; // restart the highlight
    tr.classList.add("scan-flash");
    this.renumber();
    var name = tr.querySelector("td.product").textContent;
    var where = this.extra ? " → " + this.extraLabel(tr) : "";
    this.say("✓ " + tr.getAttribute("data-sku") + (name ? " — " + name : "") + ": " + qty.value + where, true);
    beep(true);
  };

  ScanList.prototype.enqueue = function (code) {
    var self = this;
    this.busy += 1;
    this.queue = this.queue
      .then(function () {
        return self.scan(code);
      })
      .catch(function () {
        self.say("The scan of " + code + " failed (network?). Scan it again.", false);
        beep(false);
      })
      .then(function () {
        self.busy -= 1;
      });
  };

  ScanList.prototype.scan = function (code) {
    var self = this;
    var known = this.find(code);
    var mode = this.mode();
    if (known) {
      this.bump(known, code);
      return Promise.resolve();
    }
    var url = this.lookup + "?code=" + encodeURIComponent(code) + (this.po ? "&po=" + encodeURIComponent(this.po) : "");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) {
          self.say("✗ " + (answer.message || "Unknown SKU or barcode: " + code) + " Nothing was added.", false);
          beep(false);
          return;
        }
        var tr = self.find(answer.sku, mode) || self.addRow(answer.sku, answer.name, answer.barcode, 0, mode);
        self.bump(tr, code);
        if (answer.outstanding !== undefined) {
          self.status.textContent += " (outstanding on the order: " + answer.outstanding + ")";
        }
      });
    });
  };

  ScanList.prototype.undoLast = function () {
    var last = this.undo.pop();
    if (!last) return;
    var tr = this.find(last.sku, last.extra || "");
    if (!tr && last.before > 0) tr = this.addRow(last.sku, last.name || "", "", 0, last.extra || "");
    if (tr && last.before === 0) {
      tr.remove();
    } else if (tr) {
      tr.querySelector("input[name$='-quantity']").value = String(last.before);
    }
    this.renumber();
    this.say("Undone: " + last.sku + " back to " + last.before + ".", true);
  };

  function start() {
    document.querySelectorAll("table[data-scan-lines]").forEach(function (table) {
      if (table.closest("form") && !table.hasAttribute("data-scan-ready")) {
        table.setAttribute("data-scan-ready", "");
        table.scanList = new ScanList(table);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

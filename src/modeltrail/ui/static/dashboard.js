/*
 * Sortable tables: click a column header of a <table class="sortable"> to sort by it, again to
 * reverse. A cell's data-sort attribute, when present, is the key (raw numbers, ISO times), else
 * its text; headers marked data-type="number" compare numerically ("v12" as 12, "0.931" as 0.931). Empty keys (no value, NaN) sort last
 * either way, so missing metrics never crowd the top of a ranking.
 */
(function () {
  "use strict";

  function keyOf(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return null; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "") { return null; }
    if (!numeric) { return raw.toLowerCase(); }
    var value = parseFloat(raw.replace(/^v/, ""));  // "v12": a version number
    return isNaN(value) ? null : value;
  }

  function sort(table, header) {
    var index = header.cellIndex;
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(header.parentNode.cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return { row: row, key: keyOf(row, index, numeric), i: i };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        return a.key === b.key ? a.i - b.i : a.key === null ? 1 : -1;
      }
      var order = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
      return (ascending ? order : -order) || a.i - b.i;
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (r) { fragment.appendChild(r.row); });
    body.appendChild(fragment);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      if (!table.tHead || !table.tBodies.length) { return; }
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header) {
        if (!header.textContent.trim()) { return; }
        header.tabIndex = 0;
        header.classList.add("sort");
        header.title = header.title || "sort by " + header.textContent.trim();
        header.addEventListener("click", function (event) {
          if (event.target.closest("a")) { return; }
          sort(table, header);
        });
        header.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(table, header); }
        });
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());

(function () {
  var recipes = JSON.parse(document.getElementById("recipes").textContent);
  var select = document.getElementById("mode-filter");
  function apply(mode) {
    select.value = mode;
    document.querySelectorAll(".card").forEach(function (card) {
      card.hidden = mode !== "all" && card.dataset.mode !== mode;
    });
    document.querySelectorAll(".group, .sample:not(.skipped)").forEach(function (box) {
      box.hidden = !box.querySelector(".card:not([hidden])");
    });
    document.querySelectorAll(".sample.skipped").forEach(function (box) { box.hidden = mode !== "all"; });
    // The filter follows the reader from page to page.
    document.querySelectorAll("nav.pages a").forEach(function (link) {
      link.hash = mode === "all" ? "" : "mode=" + encodeURIComponent(mode);
    });
    document.body.dataset.mode = mode;
  }
  function fromHash() {
    var match = /mode=([^&]*)/.exec(location.hash);
    var mode = match ? decodeURIComponent(match[1]) : "all";
    apply(Array.prototype.some.call(select.options, function (o) { return o.value === mode; }) ? mode : "all");
  }
  select.addEventListener("change", function () { location.hash = "mode=" + encodeURIComponent(select.value); });
  window.addEventListener("hashchange", fromHash);
  fromHash();
  var box = document.getElementById("lightbox");
  document.querySelectorAll("a.open").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var r = recipes[Number(link.dataset.index)];
      var full = document.getElementById("full");
      full.hidden = !r.image;
      if (r.image) { full.src = r.image; }
      document.getElementById("recipe").textContent = r.label + "\n\n" +
        (r.parameters || r.prompt + "\nSeed: " + r.seed) + (r.error ? "\n\nfailed: " + r.error : "");
      box.hidden = false;
    });
  });
  document.getElementById("close").addEventListener("click", function () { box.hidden = true; });
  document.addEventListener("keydown", function (event) { if (event.key === "Escape") box.hidden = true; });
})();

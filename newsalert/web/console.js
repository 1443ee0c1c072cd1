// The live "would have matched" count under the keyword filter: progressive enhancement, the
// form works without it (the filter is checked again on submit).
(function () {
  var input = document.getElementById("keywords");
  var out = document.getElementById("match-count");
  if (!input || !out) return;
  var timer = null;
  function update() {
    var query = new URLSearchParams();
    query.set("keywords", input.value);
    document.querySelectorAll("input[name=topics]:checked").forEach(function (box) {
      query.append("topic", box.value);
    });
    if (!input.value.trim()) { out.textContent = ""; return; }
    fetch(input.dataset.match + "?" + query.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.error) { out.textContent = body.error; out.className = "error"; return; }
        out.className = "muted";
        out.textContent = "would have matched " + body.matched + " of " + body.of +
          " stories in the last " + body.days + " days";
      })
      .catch(function () { out.textContent = ""; });
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
  input.addEventListener("input", later);
  document.querySelectorAll("input[name=topics]").forEach(function (box) {
    box.addEventListener("change", later);
  });
  update();
})();

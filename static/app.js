// Rewind: the few behaviours HTMX does not cover. Loaded as a file so the
// Content-Security-Policy can forbid inline scripts.
document.addEventListener("click", function (ev) {
  var remove = ev.target.closest("[data-remove-service]");
  if (remove) {
    ev.preventDefault();
    var row = remove.closest(".svc");
    if (row) row.remove();
    return;
  }
  var copy = ev.target.closest("[data-copy]");
  if (copy && navigator.clipboard) {
    ev.preventDefault();
    navigator.clipboard.writeText(copy.getAttribute("data-copy")).then(function () {
      copy.textContent = "Copied";
    });
  }
});

// Steward's page behaviour, loaded on every page (no inline scripts or handlers: the Content
// Security Policy allows scripts from this origin only).
//   <form data-confirm="Delete it?">: asks before submitting; with
//   data-confirm-if-empty="field", only when that field of the form is empty.
//   <a data-history-back href="/">: goes back a page (the href is the fallback).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
  var onlyIfEmpty = form.getAttribute("data-confirm-if-empty");
  if (onlyIfEmpty && form.elements[onlyIfEmpty] && form.elements[onlyIfEmpty].value.trim() !== "") {
    return;
  }
  if (!window.confirm(form.getAttribute("data-confirm"))) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

document.addEventListener("click", function (event) {
  var link = event.target instanceof Element ? event.target.closest("a[data-history-back]") : null;
  if (!link || window.history.length < 2) return;
  event.preventDefault();
  window.history.back();
});

// Small behaviours of the pages, kept in a file so the Content-Security-Policy needs no inline script.

// A form marked data-reset-on-success is cleared after htmx sent it successfully (the chat box).
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt;
  if (event.detail.successful && form instanceof HTMLFormElement && form.hasAttribute("data-reset-on-success")) {
    form.reset();
  }
});

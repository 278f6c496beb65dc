// Small behaviours of the pages, kept in a file so the Content-Security-Policy needs no inline script.

// A form marked data-reset-on-success is cleared after htmx sent it successfully (the chat box).
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt;
  if (event.detail.successful && form instanceof HTMLFormElement && form.hasAttribute("data-reset-on-success")) {
    form.reset();
  }
});

// Top-bar menus are <details> elements (they work without script); close an open one on Escape or on a
// click outside it, as a menu is expected to behave.
document.addEventListener("click", (event) => {
  for (const menu of document.querySelectorAll("details.menu[open]")) {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const menu of document.querySelectorAll("details.menu[open]")) {
    menu.removeAttribute("open");
    menu.querySelector("summary")?.focus();
  }
});

// JSON object fields (textarea[data-json]): say while typing whether the text is a JSON object, in words.
// The form is not held back: the server checks every field at once and shows each message beside its field.
function checkJsonField(area) {
  const status = area.parentElement.querySelector(".json-status");
  let message = "";
  if (area.value.trim() !== "") {
    try {
      const value = JSON.parse(area.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) message = "This is JSON, but not an object in { }.";
    } catch (error) {
      message = "Not valid JSON yet: check the double quotes, commas and braces.";
    }
  }
  if (status) {
    status.textContent = message;
    status.classList.toggle("error", message !== "");
  }
}
document.addEventListener("input", (event) => {
  if (event.target instanceof HTMLTextAreaElement && event.target.hasAttribute("data-json")) checkJsonField(event.target);
});
document.addEventListener("focusout", (event) => {
  if (event.target instanceof HTMLTextAreaElement && event.target.hasAttribute("data-json")) checkJsonField(event.target);
});

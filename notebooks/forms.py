"""``%bifrost form <name>``: the workflow's form in the notebook, which runs it on submit.

The fields come from the workflow's parameters (types, defaults, choices, descriptions from the
docstring), like the platform's own forms. With ipywidgets installed the form is made of widgets and
its Submit button runs the workflow in the kernel (results show under the form). Without ipywidgets
an HTML form is shown: in the classic Notebook its Submit runs the workflow through the kernel; in
any other front end it shows the ``%bifrost run`` line to paste into a cell.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from html import escape
from typing import Any, TextIO, cast

from bifrost._schema import ParameterSpec
from bifrost.decorators import WorkflowDefinition
from notebooks.runner import RunResult, run_workflow

_INPUT_TYPES = {"integer": "number", "number": "number", "date": "date", "datetime": "datetime-local"}


def widgets_available() -> bool:
    """True when ipywidgets can be imported."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def coerce_values(parameters: list[ParameterSpec], values: dict[str, Any]) -> dict[str, Any]:
    """Turn what a form sends into parameters: blanks are dropped (defaults apply), JSON fields parsed.

    Validation itself is the workflow's (``"5"`` still becomes 5 there), exactly as on the platform.
    """
    by_name = {p.name: p for p in parameters}
    params: dict[str, Any] = {}
    for name, value in values.items():
        spec = by_name.get(name)
        blank = isinstance(value, str) and value.strip() == ""
        # A blank field means "the default" (or "not given"); only a required text field keeps "".
        if value is None or (blank and (spec is None or spec.type != "string" or not spec.required)):
            continue
        if spec is not None and spec.type in ("array", "object") and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                if spec.type == "array":  # one item per line, like a textarea list
                    value = [line for line in value.splitlines() if line.strip()]
        params[name] = value
    return params


class _OutputStream(io.TextIOBase):
    """A text stream into an ipywidgets ``Output``: the live log of a widget submission, under the form.

    Each write re-sends the widget's whole output list, so past ``MAX_LINES`` lines the rest is left to
    the execution's stored log (the platform has every line).
    """

    MAX_LINES = 500

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not text or self.lines > self.MAX_LINES:
            return len(text)
        self.lines += text.count("\n")
        if self.lines > self.MAX_LINES:
            text += "… more lines in the execution's log on the platform\n"
        self.output.append_stdout(text)
        return len(text)


class FormView:
    """A workflow's form in a notebook cell.

    Attributes:
        definition: The workflow it runs.
        org: Organization to run in (platform admins).
        runs: Results of the submissions so far.
        last_run: The task of the latest widget submission (``await form.last_run``).
    """

    def __init__(self, definition: WorkflowDefinition, *, org: str | None = None, use_widgets: bool | None = None):
        self.definition = definition
        self.org = org
        self.use_widgets = widgets_available() if use_widgets is None else use_widgets
        self.runs: list[RunResult] = []
        self.last_run: asyncio.Future[RunResult] | None = None
        self.fields: dict[str, Any] = {}
        self.button: Any = None
        self.output: Any = None
        self.form_id = f"bifrost-form-{uuid.uuid4().hex[:8]}"
        if self.use_widgets:
            self._build_widgets()

    # ----- submitting ----------------------------------------------------------------------------------
    async def submit(self, **values: Any) -> RunResult:
        """Run the workflow with form values (text as a form sends it, or typed values)."""
        return await self._submit(values)

    async def _submit(self, values: dict[str, Any], stream: TextIO | None = None) -> RunResult:
        params = coerce_values(self.definition.parameters, values)
        run = await run_workflow(self.definition.func, params, org=self.org, stream=stream)
        self.runs.append(run)
        return run

    def values(self) -> dict[str, Any]:
        """The widget values as they stand."""
        result: dict[str, Any] = {}
        for name, widget in self.fields.items():
            value = widget.value
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            result[name] = value
        return result

    # ----- widgets -------------------------------------------------------------------------------------
    def _widget(self, spec: ParameterSpec) -> Any:
        import ipywidgets as w

        label = spec.name + ("" if spec.required else " (optional)")
        common: dict[str, Any] = {"description": label, "style": {"description_width": "initial"}}
        if spec.description:
            common["tooltip"] = spec.description
        default = spec.default
        if spec.type == "boolean":
            return w.Checkbox(value=bool(default), indent=False, **common)
        if spec.type == "enum" and spec.choices:
            options = list(spec.choices) if spec.required else ["", *spec.choices]
            return w.Dropdown(options=options, value=default if default in options else options[0], **common)
        if spec.type in ("array", "object"):
            text = "" if default is None else json.dumps(default)
            return w.Textarea(value=text, placeholder="JSON", **common)
        return w.Text(value="" if default is None else str(default), placeholder=spec.type, **common)

    def _build_widgets(self) -> None:
        import ipywidgets as w

        self.fields = {spec.name: self._widget(spec) for spec in self.definition.parameters}
        self.button = w.Button(description="Submit", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(self._on_click)

    def _on_click(self, _button: Any) -> None:
        # Called by the kernel's comm handler, inside its event loop: run there, show under the form.
        self.last_run = asyncio.ensure_future(self._run_into_output(self.values()))

    async def _run_into_output(self, values: dict[str, Any]) -> RunResult:
        from IPython.display import HTML

        # Written into the Output widget's own list of outputs, not captured with `with output:`: the run
        # is a task that outlives the click's message, and capture routes by that message (in JupyterLab
        # nothing would show).
        self.output.clear_output()
        try:
            run = await self._submit(values, cast(TextIO, _OutputStream(self.output)))
        except Exception as exc:  # a bad value: show it under the form, keep the form usable
            self.output.append_display_data(HTML(f"<pre style='color:#b3261e'>{escape(str(exc))}</pre>"))
            raise
        self.output.append_display_data(run)
        return run

    # ----- display -------------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        if self.use_widgets:
            import ipywidgets as w

            title = w.HTML(self._title_html())
            display(w.VBox([title, *self.fields.values(), self.button, self.output]))
        else:
            display(HTML(self.html()))

    def _title_html(self) -> str:
        description = self.definition.description or ""
        return f"<b>{escape(self.definition.name)}</b><div>{escape(description)}</div>"

    def _input_html(self, spec: ParameterSpec) -> str:
        field_id = f"{self.form_id}-{spec.name}"
        default = spec.default
        attrs = f'id="{field_id}" name="{escape(spec.name)}" data-type="{escape(spec.type)}"'
        if spec.required and spec.type != "boolean":
            attrs += " required"
        if spec.type == "boolean":
            control = f'<input type="checkbox" {attrs}{" checked" if default else ""}>'
        elif spec.type == "enum" and spec.choices:
            options = "" if spec.required else '<option value=""></option>'
            for choice in spec.choices:
                selected = " selected" if choice == default else ""
                options += f'<option value="{escape(str(choice))}"{selected}>{escape(str(choice))}</option>'
            control = f"<select {attrs}>{options}</select>"
        elif spec.type in ("array", "object"):
            text = "" if default is None else json.dumps(default)
            control = f'<textarea {attrs} placeholder="JSON">{escape(text)}</textarea>'
        else:
            value = "" if default is None else escape(str(default))
            control = f'<input type="{_INPUT_TYPES.get(spec.type, "text")}" {attrs} value="{value}">'
        help_text = f"<br><small>{escape(spec.description)}</small>" if spec.description else ""
        optional = "" if spec.required else " <small>(optional)</small>"
        return (
            f'<div style="margin:4px 0"><label for="{field_id}">{escape(spec.name)}{optional}</label> '
            f"{control}{help_text}</div>"
        )

    def html(self) -> str:
        """The HTML form (no ipywidgets needed)."""
        fields = "".join(self._input_html(spec) for spec in self.definition.parameters)
        name = json.dumps(self.definition.name)
        org = json.dumps(self.org)
        # Classic Notebook exposes the kernel to output scripts; elsewhere show the line to paste.
        script = f"""
<script>
(function() {{
  var form = document.getElementById("{self.form_id}");
  if (!form) return;
  form.addEventListener("submit", function(event) {{
    event.preventDefault();
    var values = {{}}, words = [];
    Array.prototype.forEach.call(form.elements, function(el) {{
      if (!el.name) return;
      var v = el.type === "checkbox" ? (el.checked ? "true" : "false") : el.value;
      values[el.name] = v;
      if (v !== "") words.push(el.name + "=" + (/\\s/.test(v) ? JSON.stringify(v) : v));
    }});
    var kernel = window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel;
    var out = form.querySelector(".bifrost-form-command");
    if (kernel) {{
      kernel.execute("from notebooks.forms import submit_from_html; submit_from_html(" + JSON.stringify({name})
        + ", " + JSON.stringify(JSON.stringify(values)) + ", " + JSON.stringify({org}) + ")");
      out.textContent = "Submitted: see the result below this cell's next output.";
    }} else {{
      out.textContent = "%bifrost run " + {name} + " " + words.join(" ");
    }}
  }});
}})();
</script>"""
        return (
            f'<form id="{self.form_id}" class="bifrost-form">{self._title_html()}{fields}'
            '<button type="submit">Submit</button> <code class="bifrost-form-command"></code></form>'
            f"{script}"
        )


def submit_from_html(name: str, values_json: str, org: str | None = None) -> RunResult:
    """What the HTML form's Submit runs in the kernel (classic Notebook): run with the form's values."""
    from IPython.display import display

    from notebooks.runner import resolve, run_sync

    definition = resolve(name)
    view = FormView(definition, org=org, use_widgets=False)
    values = json.loads(values_json)
    run: RunResult = run_sync(lambda: view.submit(**values))
    display(run)
    return run

/*
 * Bifrost Workbench in JupyterLab: the "New Bifrost workflow" command, on the launcher and in the palette.
 *
 * The command asks for a workflow name, has the server extension write a notebook from the template
 * (POST /bifrost/notebooks, notebooks/server_extension.py), opens it and runs its connect cell. The template lives in
 * Python (notebooks/templates.py), so this file stays a thin button and never needs rebuilding for it.
 *
 * Build (development only; the output under ../labextensions/ is committed, so installs need no node):
 *   npm install && npm run build
 */
import { ILauncher } from '@jupyterlab/launcher';
import { ICommandPalette, InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

const COMMAND = 'bifrost:new-workflow';

// A bridge of three colours: the product's mark, drawn here so that nothing is fetched at run time.
const LOGO_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
  '<path d="M2 20a10 10 0 0 1 20 0" fill="none" stroke="#d9534f" stroke-width="2.2"/>' +
  '<path d="M5 20a7 7 0 0 1 14 0" fill="none" stroke="#f0ad4e" stroke-width="2.2"/>' +
  '<path d="M8 20a4 4 0 0 1 8 0" fill="none" stroke="#2a7ab0" stroke-width="2.2"/>' +
  '</svg>';
const bifrostIcon = new LabIcon({ name: 'bifrost:logo', svgstr: LOGO_SVG });

/** Ask the server extension for a new notebook from the template; answers {path, url}. */
async function createNotebook(name, dir) {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'bifrost', 'notebooks');
  const response = await ServerConnection.makeRequest(
    url,
    { method: 'POST', body: JSON.stringify({ name, dir }) },
    settings
  );
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.message || `${response.status} ${response.statusText}`);
  }
  return body;
}

/**
 * Run the template's first code cell (`%load_ext bifrost` and `%bifrost connect`), so that the notebook
 * the author just asked for opens connected to the platform as them.
 */
async function connect(app, panel) {
  if (!panel || !panel.context || !panel.sessionContext || !panel.content) {
    return;
  }
  await panel.context.ready;
  await panel.sessionContext.ready;
  const index = panel.content.widgets.findIndex(cell => cell.model.type === 'code');
  if (index < 0 || app.shell.currentWidget !== panel) {
    return; // the author moved on to another tab: run nothing behind their back
  }
  panel.content.activeCellIndex = index;
  await app.commands.execute('notebook:run-cell');
}

const plugin = {
  id: 'bifrost-jupyterlab:new-workflow',
  description: 'A "New Bifrost workflow" launcher card and command that open the workflow template.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette],
  activate: (app, launcher, palette) => {
    app.commands.addCommand(COMMAND, {
      label: args => (args.isPalette ? 'New Bifrost workflow' : 'Bifrost workflow'),
      caption: 'A notebook connected to the platform, with a workflow to trial, run from a form and publish',
      icon: args => (args.isPalette ? undefined : bifrostIcon),
      execute: async args => {
        const answer = await InputDialog.getText({
          title: 'New Bifrost workflow',
          label: 'Workflow name',
          text: 'my_workflow',
          okLabel: 'Create'
        });
        if (!answer.button.accept) {
          return null;
        }
        try {
          const created = await createNotebook(answer.value || 'my_workflow', args.cwd || '');
          // The template's kernel, started as the notebook opens (running a cell before a kernel
          // exists would ask the author to pick one).
          const panel = await app.commands.execute('docmanager:open', {
            path: created.path,
            kernel: { name: created.kernel || 'python3' }
          });
          await connect(app, panel);
          return panel;
        } catch (error) {
          await showErrorMessage('New Bifrost workflow', error);
          return null;
        }
      }
    });
    if (launcher) {
      // Cards of the Notebook section show a kernel icon by URL; rank 1 keeps the default kernel's card
      // (rank 0) first, and with it the section's own icon.
      launcher.add({
        command: COMMAND,
        category: 'Notebook',
        rank: 1,
        kernelIconUrl: 'data:image/svg+xml;utf8,' + encodeURIComponent(LOGO_SVG)
      });
    }
    if (palette) {
      palette.addItem({ command: COMMAND, category: 'Bifrost', args: { isPalette: true } });
    }
  }
};

export default plugin;

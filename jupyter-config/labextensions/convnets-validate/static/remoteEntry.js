/* The course's Validate in JupyterLab (the labextension "convnets-validate").
 *
 * The Validate button and its dialog are nbgrader's labextension's (autograder.lab answers its
 * request). This adds what nbgrader's does not have:
 *   - a command, "Validate Assignment" in the command palette (category "Course"), that presses the
 *     current notebook's Validate button: the same save, request and dialog;
 *   - the seconds on the button while the request runs ("Validating… 12 s" instead of nbgrader's
 *     "Validating...").
 *
 * Written by hand, without a build step: a module-federation container as JupyterLab loads one
 * (window._JUPYTERLAB[name] with init(shareScope) and get(module)), which takes the tokens it needs
 * from the share scope JupyterLab hands to init.
 */
(function () {
  "use strict";
  var NAME = "convnets-validate";
  var COMMAND = "convnets:validate";
  var shareScope = null;

  function newer(a, b) {
    var x = a.split(/[.+-]/).map(Number), y = b.split(/[.+-]/).map(Number);
    for (var i = 0; i < Math.max(x.length, y.length); i++) {
      if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) > (y[i] || 0);
    }
    return false;
  }

  function shared(pkg) {
    var versions = (shareScope || {})[pkg];
    if (!versions) return Promise.reject(new Error(NAME + ": " + pkg + " is not shared"));
    var best = Object.keys(versions).reduce(function (a, b) { return a && !newer(b, a) ? a : b; }, null);
    return Promise.resolve(versions[best].get()).then(function (factory) { return factory(); });
  }

  function validateButton(panel) {
    // nbgrader 0.9: <jp-button class="validate-button ...">, in the notebook panel's toolbar
    return panel ? panel.node.querySelector("jp-button.validate-button, .validate-button jp-button, button.validate-button, .validate-button button") : null;
  }

  function tickButtons(started) {
    var labels = document.querySelectorAll(".validate-button .jp-ToolbarButtonComponent-label");
    labels.forEach(function (label) {
      if (!/^Validating/.test(label.innerText)) {
        started.delete(label);
        return;
      }
      if (!started.has(label)) started.set(label, Date.now());
      label.innerText = "Validating\u2026 " + Math.floor((Date.now() - started.get(label)) / 1000) + " s";
    });
  }

  function plugin(apputils, notebook) {
    return {
      id: NAME + ":plugin",
      description: "Validate in the command palette; the seconds on the Validate button while it runs",
      autoStart: true,
      requires: [notebook.INotebookTracker],
      optional: [apputils.ICommandPalette],
      activate: function (app, tracker, palette) {
        app.commands.addCommand(COMMAND, {
          label: "Validate Assignment",
          caption: "Run the course's visible tests on this notebook (the toolbar's Validate)",
          isEnabled: function () { return validateButton(tracker.currentWidget) !== null; },
          execute: function () {
            var button = validateButton(tracker.currentWidget);
            if (button && !button.hasAttribute("disabled")) button.click();
          }
        });
        if (palette) palette.addItem({ command: COMMAND, category: "Course" });
        var started = new Map();
        window.setInterval(function () { tickButtons(started); }, 250);
      }
    };
  }

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = {
    init: function (scope) { shareScope = scope; },
    get: function (module) {
      if (module !== "./extension") return Promise.reject(new Error(NAME + " has no module " + module));
      return Promise.all([shared("@jupyterlab/apputils"), shared("@jupyterlab/notebook")]).then(function (m) {
        var exports = { __esModule: true, default: plugin(m[0], m[1]) };
        return function () { return exports; };
      });
    }
  };
})();

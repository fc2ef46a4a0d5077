/* ipywidgets' html-manager (@jupyter-widgets/base typeset()) typesets widget labels with the MathJax 2
 * API, MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]), whenever window.MathJax exists. The book
 * loads MathJax 3 (mathjax_path), which has no Hub: every widget page with math would throw
 * "Cannot read properties of undefined (reading 'Queue')". This shim maps that one call to MathJax 3.
 * Loaded with defer after MathJax (html_js_files, priority 800 > MathJax's 500), before the widgets
 * render (on window load). Harmless on pages without MathJax or without widgets. */
(function () {
  var MJ = window.MathJax;
  if (!MJ || MJ.Hub || !MJ.version || String(MJ.version).charAt(0) !== "3") { return; }
  function typeset(el) {
    var run = function () { return MJ.typesetPromise ? MJ.typesetPromise(el ? [el] : undefined) : null; };
    var ready = MJ.startup && MJ.startup.promise ? MJ.startup.promise : Promise.resolve();
    ready.then(run).catch(function (e) { if (window.console) { console.warn("MathJax typeset of a widget failed", e); } });
  }
  MJ.Hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset") { typeset(job[2]); }
        else if (typeof job === "function") { job(); }
      }
    }
  };
})();

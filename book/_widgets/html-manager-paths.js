/* Loaded between require.js and html-manager/embed-amd.js (nb_ipywidgets_js in _config.yml).
 * embed-amd.js defines its AMD modules by name ("@jupyter-widgets/base", ...) and webpack derives the
 * URL of the icon fonts its CSS refers to from each module's require.js URL, which by default is the
 * PAGE's folder (book/@jupyter-widgets/...: 404). Map the names next to this file's folder
 * (_static/html-manager/), where the fonts are vendored. Nothing is fetched from these paths: the
 * modules are already defined by embed-amd.js. */
(function () {
  var here = document.currentScript && document.currentScript.src;
  if (!here || typeof window.require === "undefined" || !window.require.config) { return; }
  var dir = here.replace(/[?#].*$/, "").replace(/[^\/]*$/, "") + "html-manager/";
  var names = ["html-manager/dist/libembed-amd", "html-manager", "base", "base7", "controls", "controls7",
               "output", "base-manager", "schema"];
  var paths = {};
  for (var i = 0; i < names.length; i++) {
    paths["@jupyter-widgets/" + names[i]] = dir + names[i].replace(/\//g, "-");
  }
  window.require.config({ paths: paths });
})();

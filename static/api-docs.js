// /api/docs: Swagger UI over /api/openapi.json. "Try it out" goes to the server this page came
// from (the document's own `servers` entry names the development default); no online validator
// (it would send the document elsewhere, and the page's CSP refuses it anyway).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") { return; }
  fetch(root.dataset.spec, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (resp) {
      if (!resp.ok) { throw new Error("HTTP " + resp.status); }
      return resp.json();
    })
    .then(function (spec) {
      spec.servers = [{ url: window.location.origin, description: "This Chartbox server" }];
      root.textContent = "";
      window.ui = window.SwaggerUIBundle({
        spec: spec,
        domNode: root,
        deepLinking: false,  // its links sit inside the operation buttons (nested controls)
        docExpansion: "list",
        defaultModelsExpandDepth: 0,
        displayRequestDuration: true,
        filter: true,
        persistAuthorization: false,
        validatorUrl: null,
        syntaxHighlight: false,  // its colours on the dark code blocks fall short of 4.5:1
        presets: [window.SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      });
      mendAccessibility();
    })
    .catch(function () {
      root.textContent = "The API document could not be loaded; reload the page to try again.";
    });

  // What Swagger UI leaves out for assistive technology, added whenever its views (re)render:
  // names for its unlabelled choosers and fields, keyboard access to its scrolling code blocks.
  function mendAccessibility() {
    var mend = function () {
      var servers = document.getElementById("servers");
      if (servers && !servers.hasAttribute("aria-label")) { servers.setAttribute("aria-label", "Server"); }
      root.querySelectorAll("tr[data-param-name] select:not([aria-label]), tr[data-param-name] input:not([aria-label])")
        .forEach(function (field) { field.setAttribute("aria-label", field.closest("tr").dataset.paramName); });
      root.querySelectorAll("pre.microlight:not([tabindex]), .curl:not([tabindex])")
        .forEach(function (block) { block.setAttribute("tabindex", "0"); });
    };
    mend();
    new MutationObserver(mend).observe(root, { childList: true, subtree: true });
  }
}());

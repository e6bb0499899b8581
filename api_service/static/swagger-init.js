// Swagger UI over our own OpenAPI document. A file rather than an inline script, so the page's
// Content-Security-Policy can allow scripts from this origin only.
"use strict";

window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json", // next to this page: /api/v1/openapi.json
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout", // no top bar: this page shows our document, not any URL typed in
    validatorUrl: null, // never send the document to an outside validator
    persistAuthorization: false, // a pasted access token lives in this page only, never in storage
    displayRequestDuration: true,
  });
});

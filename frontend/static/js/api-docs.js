// Starts Swagger UI at /schema. A file rather than an inline script, so the documentation page
// keeps the same Content-Security-Policy as every other page (no inline script at all).
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-container");
  SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-container",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  });
});

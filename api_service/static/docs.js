// Renders /api/v1/openapi.json as a list of operations. No dependencies, no network beyond this origin.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function resolve(doc, schema, depth) {
  // Inline $refs a few levels deep so that a request body reads as one example object.
  if (!schema || depth > 6) return schema;
  if (schema.$ref) return resolve(doc, doc.components.schemas[schema.$ref.split("/").pop()], depth + 1);
  const copy = Array.isArray(schema) ? [] : {};
  for (const [key, value] of Object.entries(schema)) {
    copy[key] = value && typeof value === "object" ? resolve(doc, value, depth + 1) : value;
  }
  return copy;
}

function example(schema) {
  if (!schema) return null;
  if (schema.examples && schema.examples.length) return schema.examples[0];
  if (schema.anyOf) return example(schema.anyOf.find((s) => s.type !== "null") || schema.anyOf[0]);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  switch (schema.type) {
    case "object": {
      const out = {};
      for (const [name, prop] of Object.entries(schema.properties || {})) out[name] = example(prop);
      return out;
    }
    case "array": return [example(schema.items)];
    case "integer": case "number": return schema.minimum !== undefined ? schema.minimum : 0;
    case "boolean": return true;
    case "string":
      if (schema.format === "uuid") return "00000000-0000-0000-0000-000000000000";
      if (schema.format === "date-time") return "2024-01-01T00:00:00Z";
      return "string";
    default: return null;
  }
}

function fieldTable(schema) {
  const props = (schema && schema.properties) || {};
  if (!Object.keys(props).length) return null;
  const required = new Set(schema.required || []);
  const rows = Object.entries(props).map(([name, prop]) => el("tr", {},
    el("td", {}, el("code", {}, name), required.has(name) ? " *" : ""),
    el("td", {}, prop.type || (prop.anyOf || []).map((s) => s.type || s.format || "").filter(Boolean).join(" | ")
      || (prop.enum || []).join(" | ")),
    el("td", {}, prop.description || "")));
  return el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "notes")), ...rows);
}

function renderOperation(doc, path, method, op) {
  const body = el("div", { class: "body" });
  if (op.description) body.append(el("p", {}, op.description));
  if (op.parameters && op.parameters.length) {
    body.append(el("h4", {}, "Parameters"));
    body.append(el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type")),
      ...op.parameters.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? " *" : ""),
        el("td", {}, p.in), el("td", {}, (p.schema && p.schema.type) || "")))));
  }
  if (op.requestBody) {
    const schema = resolve(doc, op.requestBody.content["application/json"].schema, 0);
    body.append(el("h4", {}, "Request body"), fieldTable(schema),
      el("pre", {}, JSON.stringify(example(schema), null, 2)));
  }
  body.append(el("h4", {}, "Responses"));
  for (const [status, response] of Object.entries(op.responses || {})) {
    const content = response.content && response.content["application/json"];
    const line = el("div", {}, el("strong", {}, status), " ", response.description);
    body.append(line);
    if (content && status.startsWith("2")) {
      body.append(el("pre", {}, JSON.stringify(example(resolve(doc, content.schema, 0)), null, 2)));
    }
  }
  const role = op["x-role"];
  const summary = el("summary", {}, el("span", { class: `method ${method}` }, method),
    el("span", { class: "path" }, path), el("span", {}, op.summary || ""),
    role ? el("span", { class: `badge ${role}` }, role) : el("span", { class: "badge" }, "public"));
  const details = el("details", { class: "op" }, summary, body);
  details.dataset.search = `${method} ${path} ${op.summary || ""}`.toLowerCase();
  return details;
}

async function main() {
  const target = document.getElementById("operations");
  let doc;
  try {
    const response = await fetch("openapi.json", { headers: { Accept: "application/json" } });
    doc = await response.json();
  } catch (err) {
    target.textContent = `Could not load openapi.json: ${err}`;
    return;
  }
  document.getElementById("title").textContent = `${doc.info.title} ${doc.info.version}`;
  document.getElementById("description").textContent = doc.info.description || "";
  target.textContent = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) target.append(renderOperation(doc, path, method, op));
  }
  document.getElementById("filter").addEventListener("input", (event) => {
    const needle = event.target.value.toLowerCase();
    for (const node of target.children) node.hidden = needle && !node.dataset.search.includes(needle);
  });
}

main();

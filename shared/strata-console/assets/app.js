// Strata's console: one page, hash routes, vanilla JavaScript. Tables and
// items go through the DynamoDB API (POST /), like any client; what that
// API cannot tell comes from /console/api/status and /console/api/storage.
"use strict";

// ------------------------------------------------------------------ helpers

const $ = (sel, root = document) => root.querySelector(sel);

// el("tag", {attr: value, onclick: fn}, child, ...): children are nodes or text.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "checked" || k === "value") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function grid(headers, rows, attrs = {}) {
  return el("table", { class: "grid", ...attrs },
    el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function fmtBytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KB", "MB", "GB", "TB"];
  const i = Math.min(u.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  return (n / Math.pow(1024, i)).toFixed(i ? 1 : 0) + " " + u[i];
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

function fmtNum(n, digits = 2) {
  if (n === undefined || n === null || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

class ApiError extends Error {
  constructor(type, message, status) {
    super(`${type}: ${message}`);
    this.type = type;
    this.status = status;
  }
}

// ------------------------------------------------------------------ signing
// With `strata serve --auth`, every API call is SigV4-signed here, in the
// browser (WebCrypto), with the access key the user signed in with; the key
// stays in this tab's sessionStorage.

const CREDS = "strata-console-credentials";
let region = "us-east-1";
const utf8 = new TextEncoder();

function credentials() {
  try { return JSON.parse(sessionStorage.getItem(CREDS) || "null"); } catch (_) { return null; }
}

function hex(buf) {
  return [...new Uint8Array(buf)].map(b => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(text) {
  return hex(await crypto.subtle.digest("SHA-256", utf8.encode(text)));
}

async function hmac(key, text) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, utf8.encode(text));
}

// SigV4 for `method path?query` with `body`: signs content-type (if any),
// host, x-amz-date and x-amz-target, and sets X-Amz-Date and Authorization.
async function signRequest(headers, body, c, method = "POST", path = "/", query = "") {
  const amz = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const date = amz.slice(0, 8);
  const signed = { host: location.host, "x-amz-date": amz, "x-amz-target": headers["X-Amz-Target"] };
  if (headers["Content-Type"]) signed["content-type"] = headers["Content-Type"];
  const names = Object.keys(signed).sort();
  const canonical = [method, path, query, names.map(n => `${n}:${signed[n]}\n`).join(""), names.join(";"), await sha256(body)].join("\n");
  const scope = `${date}/${region}/dynamodb/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amz, scope, await sha256(canonical)].join("\n");
  let key = utf8.encode("AWS4" + c.secret);
  for (const part of [date, region, "dynamodb", "aws4_request"]) key = await hmac(key, part);
  headers["X-Amz-Date"] = amz;
  headers.Authorization = `AWS4-HMAC-SHA256 Credential=${c.key}/${scope}, SignedHeaders=${names.join(";")}, Signature=${hex(await hmac(key, toSign))}`;
}

// A GET of the console's own status endpoints, signed when signed in.
async function consoleGet(path, query = "") {
  const headers = { "X-Amz-Target": "StrataConsole.Get" };
  const c = credentials();
  if (c) await signRequest(headers, "", c, "GET", path, query);
  return fetch(query ? `${path}?${query}` : path, { headers });
}

const AUTH_ERRORS = new Set(["MissingAuthenticationTokenException", "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException"]);

// One DynamoDB (or DynamoDB Streams) API call; errors as DynamoDB returns them.
async function api(op, body = {}, streams = false) {
  const target = (streams ? "DynamoDBStreams_20120810." : "DynamoDB_20120810.") + op;
  const text = JSON.stringify(body);
  const headers = { "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target };
  const c = credentials();
  if (c) await signRequest(headers, text, c);
  const r = await fetch("/", { method: "POST", headers, body: text });
  const answer = await r.text();
  let j = {};
  try { j = answer ? JSON.parse(answer) : {}; } catch (_) { j = { message: answer }; }
  if (!r.ok) {
    const type = String(j.__type || "Error").split("#").pop();
    const e = new ApiError(type, j.message || j.Message || `HTTP ${r.status}`, r.status);
    if (AUTH_ERRORS.has(type)) e.signIn = true;
    throw e;
  }
  return j;
}

function signInPage(main, why) {
  const key = el("input", { id: "signin-key", placeholder: "access key id", size: 28 });
  const secret = el("input", { id: "signin-secret", type: "password", placeholder: "secret access key", size: 40 });
  main.replaceChildren(
    el("h1", {}, "Sign in"),
    el("p", { class: "muted" }, "This server requires SigV4-signed requests (strata serve --auth). The console signs each request in this browser tab with the key you give; it is kept in this tab only."),
    why ? el("p", { class: "error", id: "signin-error" }, why) : null,
    el("div", { class: "card row" }, el("label", {}, "Access key id", key), el("label", {}, "Secret access key", secret),
      el("button", {
        id: "signin-submit", onclick: () => {
          sessionStorage.setItem(CREDS, JSON.stringify({ key: key.value.trim(), secret: secret.value }));
          route();
        },
      }, "Sign in")));
}

async function status() {
  const r = await consoleGet("/console/api/status");
  if (!r.ok) {
    const text = await r.text();
    let j = {};
    try { j = JSON.parse(text); } catch (_) { j = { message: text }; }
    const type = String(j.__type || "Error").split("#").pop();
    const e = new ApiError(type, j.message || `status: HTTP ${r.status}`, r.status);
    if (AUTH_ERRORS.has(type)) e.signIn = true;
    throw e;
  }
  return r.json();
}

// A DynamoDB AttributeValue as plain JSON (sets become arrays; numbers stay
// numbers when exact, else strings).
function plain(av) {
  const [t, v] = Object.entries(av)[0] || [];
  switch (t) {
    case "S": case "B": return v;
    case "N": { const n = Number(v); return String(n) === v ? n : v; }
    case "BOOL": return v;
    case "NULL": return null;
    case "M": return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
    case "L": return v.map(plain);
    case "SS": case "BS": return v;
    case "NS": return v.map(x => plain({ N: x }));
    default: return av;
  }
}

function plainItem(item) {
  return Object.fromEntries(Object.entries(item).map(([k, v]) => [k, plain(v)]));
}

function attrValue(type, text) {
  return type === "N" ? { N: text } : type === "B" ? { B: text } : { S: text };
}

// Shell and Python renderings of a request, for the "same call from" boxes.
function shellQuote(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

function pyRepr(v, indent = "") {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  const inner = indent + "    ";
  if (Array.isArray(v)) return "[" + v.map(x => pyRepr(x, inner)).join(", ") + "]";
  const parts = Object.entries(v).map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pyRepr(x, inner)}`);
  return parts.length ? "{\n" + parts.join(",\n") + "\n" + indent + "}" : "{}";
}

const CLI_NAMES = {
  TableName: "--table-name", IndexName: "--index-name",
  KeyConditionExpression: "--key-condition-expression", FilterExpression: "--filter-expression",
  ProjectionExpression: "--projection-expression",
  ExpressionAttributeNames: "--expression-attribute-names",
  ExpressionAttributeValues: "--expression-attribute-values", Limit: "--limit",
};

function cliCommand(op, req) {
  const parts = [`aws dynamodb ${op === "Query" ? "query" : "scan"}`, `--endpoint-url ${location.origin}`];
  for (const [k, v] of Object.entries(req)) {
    if (k === "ScanIndexForward") { if (v === false) parts.push("--no-scan-index-forward"); continue; }
    if (k === "ConsistentRead") { if (v) parts.push("--consistent-read"); continue; }
    const flag = CLI_NAMES[k];
    if (!flag) continue;
    parts.push(`${flag} ${typeof v === "object" ? shellQuote(JSON.stringify(v)) : shellQuote(v)}`);
  }
  return parts.join(" \\\n    ");
}

function boto3Call(op, req) {
  const args = Object.entries(req).map(([k, v]) => `    ${k}=${pyRepr(v, "    ")},`).join("\n");
  return `import boto3\n\nddb = boto3.client("dynamodb", endpoint_url=${JSON.stringify(location.origin)})\n` +
    `response = ddb.${op === "Query" ? "query" : "scan"}(\n${args}\n)\nprint(response["Items"])`;
}

// ------------------------------------------------------------------ routing

let timers = [];
function every(ms, fn) { timers.push(setInterval(fn, ms)); }
function stopTimers() { timers.forEach(clearInterval); timers = []; }

function showError(where, e) {
  where.textContent = e instanceof Error ? e.message : String(e);
}

async function route() {
  stopTimers();
  const parts = (location.hash.replace(/^#\/?/, "") || "tables").split("/").map(decodeURIComponent);
  document.querySelectorAll("header nav a").forEach(a =>
    a.classList.toggle("active", a.dataset.nav === (parts[0] === "table" ? "tables" : parts[0])));
  const main = $("#main");
  main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    switch (parts[0]) {
      case "table": await tablePage(main, parts[1], parts[2] || "items"); break;
      case "operations": await operationsPage(main); break;
      case "storage": await storagePage(main, parts[1]); break;
      case "replication": await replicationPage(main); break;
      default: await tablesPage(main);
    }
  } catch (e) {
    if (e.signIn) signInPage(main, credentials() ? e.message : null);
    else main.replaceChildren(el("p", { class: "error", id: "page-error" }, e.message));
  }
}

// ------------------------------------------------------------------ tables

async function describeAll() {
  const names = [];
  let start;
  do {
    const r = await api("ListTables", start ? { ExclusiveStartTableName: start } : {});
    names.push(...r.TableNames);
    start = r.LastEvaluatedTableName;
  } while (start);
  return Promise.all(names.map(async n => {
    try { return (await api("DescribeTable", { TableName: n })).Table; } catch (_) { return { TableName: n }; }
  }));
}

function keysOf(t) {
  const ks = t.KeySchema || [];
  return ks.map(k => {
    const d = (t.AttributeDefinitions || []).find(a => a.AttributeName === k.AttributeName);
    return `${k.AttributeName} (${k.KeyType === "HASH" ? "partition" : "sort"}, ${d ? d.AttributeType : "?"})`;
  }).join(", ");
}

async function tablesPage(main) {
  const [tables, st] = await Promise.all([describeAll(), status()]);
  const parts = Object.fromEntries(st.tables.map(t => [t.name, t]));
  const extra = await Promise.all(tables.map(async t => {
    const [ttl, pitr] = await Promise.all([
      api("DescribeTimeToLive", { TableName: t.TableName }).catch(() => null),
      api("DescribeContinuousBackups", { TableName: t.TableName }).catch(() => null),
    ]);
    return { ttl, pitr };
  }));
  const rows = tables.map((t, i) => {
    const p = parts[t.TableName] || {};
    const ttl = extra[i].ttl && extra[i].ttl.TimeToLiveDescription;
    const pitr = extra[i].pitr && extra[i].pitr.ContinuousBackupsDescription;
    const indexes = [...(t.GlobalSecondaryIndexes || []).map(g => `GSI ${g.IndexName}`),
      ...(t.LocalSecondaryIndexes || []).map(l => `LSI ${l.IndexName}`)];
    return el("tr", { "data-table": t.TableName },
      el("td", {}, el("a", { href: `#/table/${encodeURIComponent(t.TableName)}` }, t.TableName)),
      el("td", {}, t.TableStatus || "—"),
      el("td", {}, keysOf(t)),
      el("td", { class: "num" }, fmtNum(t.ItemCount, 0)),
      el("td", { class: "num" }, fmtBytes(t.TableSizeBytes)),
      el("td", { class: "num" }, p.partitions === undefined ? "—" : `${p.partitions}${p.splits ? ` (${p.splits} splits)` : ""}`),
      el("td", {}, t.StreamSpecification && t.StreamSpecification.StreamEnabled ? t.StreamSpecification.StreamViewType : "off"),
      el("td", {}, pitr && pitr.PointInTimeRecoveryDescription ? pitr.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus : "—"),
      el("td", {}, ttl ? `${ttl.TimeToLiveStatus}${ttl.AttributeName ? " (" + ttl.AttributeName + ")" : ""}` : "—"),
      el("td", {}, (t.Replicas || []).map(r => r.RegionName).join(", ") || "—"),
      el("td", {}, indexes.join(", ") || "—"),
      el("td", {}, el("button", { class: "danger delete-table", onclick: () => confirmDelete(t.TableName) }, "Delete")));
  });
  main.replaceChildren(
    el("h1", {}, "Tables"),
    tables.length ? grid(["Name", "Status", "Keys", "Items", "Size", "Partitions", "Stream", "PITR", "TTL", "Replicas", "Indexes", ""], rows, { id: "tables" })
      : el("p", { class: "muted", id: "tables" }, "No tables yet."),
    el("div", { id: "confirm" }),
    createTableForm());
}

function confirmDelete(name) {
  const box = $("#confirm");
  const input = el("input", { id: "confirm-name", placeholder: name });
  const err = el("div", { class: "error" });
  box.replaceChildren(el("div", { class: "card" },
    el("p", {}, "Delete table ", el("b", {}, name), " and all its items? Type its name to confirm."),
    el("div", { class: "row" }, input,
      el("button", {
        class: "danger", id: "confirm-delete", onclick: async () => {
          if (input.value !== name) { err.textContent = "The name does not match."; return; }
          try { await api("DeleteTable", { TableName: name }); route(); } catch (e) { showError(err, e); }
        },
      }, "Delete table"),
      el("button", { class: "plain", onclick: () => box.replaceChildren() }, "Cancel")),
    err));
  input.focus();
}

function typeSelect(id) {
  return el("select", { id }, ["S", "N", "B"].map(t => el("option", { value: t }, t)));
}

function createTableForm() {
  const err = el("div", { class: "error", id: "ct-error" });
  const v = id => $("#" + id).value.trim();
  const submit = async () => {
    err.textContent = "";
    const defs = {};
    const key = (name, type, kind) => { defs[name] = type; return { AttributeName: name, KeyType: kind }; };
    const req = { TableName: v("ct-name"), BillingMode: "PAY_PER_REQUEST", KeySchema: [key(v("ct-hash"), v("ct-hash-type"), "HASH")] };
    if (v("ct-range")) req.KeySchema.push(key(v("ct-range"), v("ct-range-type"), "RANGE"));
    if (v("ct-gsi-name")) {
      const ks = [key(v("ct-gsi-hash"), v("ct-gsi-hash-type"), "HASH")];
      if (v("ct-gsi-range")) ks.push(key(v("ct-gsi-range"), v("ct-gsi-range-type"), "RANGE"));
      req.GlobalSecondaryIndexes = [{ IndexName: v("ct-gsi-name"), KeySchema: ks, Projection: { ProjectionType: "ALL" } }];
    }
    if ($("#ct-stream").checked) req.StreamSpecification = { StreamEnabled: true, StreamViewType: "NEW_AND_OLD_IMAGES" };
    req.AttributeDefinitions = Object.entries(defs).map(([n, t]) => ({ AttributeName: n, AttributeType: t }));
    try {
      await api("CreateTable", req);
      location.hash = `#/table/${encodeURIComponent(req.TableName)}`;
    } catch (e) { showError(err, e); }
  };
  const field = (label, input) => el("label", {}, label, input);
  return el("div", { class: "card", id: "create-table" },
    el("h2", {}, "Create a table"),
    el("div", { class: "row" },
      field("Table name", el("input", { id: "ct-name" })),
      field("Partition key", el("input", { id: "ct-hash", value: "pk" })), field("type", typeSelect("ct-hash-type")),
      field("Sort key (optional)", el("input", { id: "ct-range" })), field("type", typeSelect("ct-range-type")),
      el("label", {}, "Stream", el("input", { type: "checkbox", id: "ct-stream" }))),
    el("div", { class: "row" },
      field("Global secondary index (optional)", el("input", { id: "ct-gsi-name", placeholder: "index name" })),
      field("its partition key", el("input", { id: "ct-gsi-hash" })), field("type", typeSelect("ct-gsi-hash-type")),
      field("its sort key", el("input", { id: "ct-gsi-range" })), field("type", typeSelect("ct-gsi-range-type")),
      el("button", { id: "ct-submit", onclick: submit }, "Create table")),
    err);
}

// ------------------------------------------------------------------ a table

async function tablePage(main, name, tab) {
  const t = (await api("DescribeTable", { TableName: name })).Table;
  const link = (id, label) => el("a", { href: `#/table/${encodeURIComponent(name)}/${id}`, class: tab === id ? "active" : "", id: `tab-${id}` }, label);
  const body = el("div", { id: "tab-body" });
  main.replaceChildren(
    el("h1", {}, name, " ", el("span", { class: "muted" }, t.TableStatus)),
    el("p", { class: "muted" }, keysOf(t)),
    el("div", { class: "tabs" }, link("items", "Items"), link("query", "Query and scan"), link("stream", "Stream"), link("storage", "Storage")),
    body);
  if (tab === "query") queryTab(body, t);
  else if (tab === "stream") streamTab(body, t);
  else if (tab === "storage") await storageOf(body, name);
  else itemsTab(body, t);
}

function keyOf(t, item) {
  return Object.fromEntries(t.KeySchema.map(k => [k.AttributeName, item[k.AttributeName]]));
}

function itemsTab(body, t) {
  const state = { starts: [undefined], page: 0, items: [], last: undefined };
  const err = el("div", { class: "error", id: "item-error" });
  const list = el("div", { id: "items" });
  const editor = el("div", { id: "editor" });
  const plainView = el("input", { type: "checkbox", id: "view-plain", onchange: () => draw() });

  const draw = () => {
    const rows = state.items.map(item => el("tr", { class: "item" },
      el("td", { class: "item-cell" }, JSON.stringify(plainView.checked ? plainItem(item) : item)),
      el("td", {},
        el("button", { class: "plain edit-item", onclick: () => edit(item) }, "Edit"), " ",
        el("button", { class: "danger delete-item", onclick: () => remove(item) }, "Delete"))));
    list.replaceChildren(
      state.items.length ? grid([plainView.checked ? "Item (plain JSON)" : "Item (DynamoDB JSON)", ""], rows)
        : el("p", { class: "muted" }, "No items."),
      el("div", { class: "row" },
        el("button", { class: "plain", id: "prev-page", disabled: state.page === 0 || undefined, onclick: () => { state.page--; load(); } }, "Previous page"),
        el("button", { class: "plain", id: "next-page", disabled: !state.last || undefined, onclick: () => { state.starts[state.page + 1] = state.last; state.page++; load(); } }, "Next page"),
        el("span", { class: "muted" }, `page ${state.page + 1}`)));
  };
  const load = async () => {
    err.textContent = "";
    try {
      const req = { TableName: t.TableName, Limit: 25 };
      if (state.starts[state.page]) req.ExclusiveStartKey = state.starts[state.page];
      const r = await api("Scan", req);
      state.items = r.Items;
      state.last = r.LastEvaluatedKey;
      draw();
    } catch (e) { showError(err, e); }
  };
  const edit = (item) => {
    const isNew = !item;
    const text = el("textarea", { id: "item-json", rows: 10 });
    text.value = JSON.stringify(item || Object.fromEntries(t.KeySchema.map(k => [k.AttributeName, { S: "" }])), null, 2);
    editor.replaceChildren(el("div", { class: "card" },
      el("b", {}, isNew ? "New item" : "Edit item"), el("span", { class: "muted" }, " (DynamoDB JSON; saved with PutItem)"),
      text,
      el("div", { class: "row" },
        el("button", {
          id: "save-item", onclick: async () => {
            err.textContent = "";
            let parsed;
            try { parsed = JSON.parse(text.value); } catch (e) { err.textContent = `Not JSON: ${e.message}`; return; }
            try {
              if (!isNew) {
                // A changed key is a new item: the old one goes.
                const oldKey = keyOf(t, item);
                const newKey = keyOf(t, parsed);
                await api("PutItem", { TableName: t.TableName, Item: parsed });
                if (JSON.stringify(oldKey) !== JSON.stringify(newKey)) await api("DeleteItem", { TableName: t.TableName, Key: oldKey });
              } else {
                await api("PutItem", { TableName: t.TableName, Item: parsed });
              }
              editor.replaceChildren();
              load();
            } catch (e) { showError(err, e); }
          },
        }, "Save"),
        el("button", { class: "plain", onclick: () => editor.replaceChildren() }, "Cancel"))));
    text.focus();
  };
  const remove = async (item) => {
    err.textContent = "";
    try { await api("DeleteItem", { TableName: t.TableName, Key: keyOf(t, item) }); load(); } catch (e) { showError(err, e); }
  };
  body.replaceChildren(
    el("div", { class: "row", style: "margin:10px 0" },
      el("button", { id: "new-item", onclick: () => edit(null) }, "New item"),
      el("button", { class: "plain", id: "reload-items", onclick: () => load() }, "Reload"),
      el("label", { style: "flex-direction:row;gap:6px;align-items:center" }, plainView, "plain JSON view")),
    editor, err, list);
  load();
}

function queryTab(body, t) {
  const defs = Object.fromEntries((t.AttributeDefinitions || []).map(a => [a.AttributeName, a.AttributeType]));
  const schemas = { "": t.KeySchema };
  for (const i of [...(t.GlobalSecondaryIndexes || []), ...(t.LocalSecondaryIndexes || [])]) schemas[i.IndexName] = i.KeySchema;
  const err = el("div", { class: "error", id: "q-error" });
  const out = el("div", { id: "q-results" });
  const cli = el("pre", { id: "q-cli" });
  const py = el("pre", { id: "q-boto3" });
  const keyLabels = el("span", { class: "muted", id: "q-keys" });
  const index = el("select", { id: "q-index", onchange: () => showKeys() },
    Object.keys(schemas).map(n => el("option", { value: n }, n || "(table)")));
  const mode = el("select", { id: "q-mode" }, el("option", { value: "Query" }, "Query"), el("option", { value: "Scan" }, "Scan"));
  const skOp = el("select", { id: "q-sk-op" }, ["", "=", "<", "<=", ">", ">=", "begins_with", "between"].map(o => el("option", { value: o }, o || "(no sort key condition)")));
  const input = (id, ph) => el("input", { id, placeholder: ph });
  const showKeys = () => {
    const ks = schemas[index.value];
    keyLabels.textContent = ks.map(k => `${k.KeyType === "HASH" ? "partition" : "sort"} key: ${k.AttributeName} (${defs[k.AttributeName]})`).join("; ");
  };
  const build = () => {
    const ks = schemas[index.value];
    const hash = ks.find(k => k.KeyType === "HASH");
    const range = ks.find(k => k.KeyType === "RANGE");
    const req = { TableName: t.TableName };
    if (index.value) req.IndexName = index.value;
    const names = {}, values = {};
    if (mode.value === "Query") {
      names["#pk"] = hash.AttributeName;
      values[":pk"] = attrValue(defs[hash.AttributeName], $("#q-pk").value);
      let kce = "#pk = :pk";
      const op = skOp.value;
      if (op) {
        if (!range) throw new Error("this table or index has no sort key");
        names["#sk"] = range.AttributeName;
        values[":sk"] = attrValue(defs[range.AttributeName], $("#q-sk").value);
        if (op === "begins_with") kce += " AND begins_with(#sk, :sk)";
        else if (op === "between") {
          values[":sk2"] = attrValue(defs[range.AttributeName], $("#q-sk2").value);
          kce += " AND #sk BETWEEN :sk AND :sk2";
        } else kce += ` AND #sk ${op} :sk`;
      }
      req.KeyConditionExpression = kce;
      if ($("#q-desc").checked) req.ScanIndexForward = false;
    }
    const filter = $("#q-filter").value.trim();
    if (filter) {
      req.FilterExpression = filter;
      const fv = $("#q-filter-values").value.trim();
      if (fv) Object.assign(values, JSON.parse(fv));
    }
    const proj = $("#q-projection").value.trim();
    if (proj) req.ProjectionExpression = proj;
    if (Object.keys(names).length) req.ExpressionAttributeNames = names;
    if (Object.keys(values).length) req.ExpressionAttributeValues = values;
    if ($("#q-consistent").checked) req.ConsistentRead = true;
    const limit = $("#q-limit").value.trim();
    if (limit) req.Limit = Number(limit);
    return req;
  };
  const run = async () => {
    err.textContent = "";
    let req;
    try { req = build(); } catch (e) { showError(err, e); return; }
    cli.textContent = cliCommand(mode.value, req);
    py.textContent = boto3Call(mode.value, req);
    try {
      const r = await api(mode.value, req);
      out.replaceChildren(
        el("p", { class: "muted", id: "q-count" }, `${r.Count} item${r.Count === 1 ? "" : "s"} (${r.ScannedCount} scanned)${r.LastEvaluatedKey ? "; more after " + JSON.stringify(r.LastEvaluatedKey) : ""}`),
        grid(["Item"], r.Items.map(i => el("tr", { class: "q-item" }, el("td", { class: "item-cell" }, JSON.stringify(plainItem(i)))))));
    } catch (e) { out.replaceChildren(); showError(err, e); }
  };
  const field = (label, x) => el("label", {}, label, x);
  body.replaceChildren(el("div", { class: "card" },
    el("div", { class: "row" }, field("Operation", mode), field("Index", index), keyLabels),
    el("div", { class: "row" },
      field("Partition key value", input("q-pk", "value")),
      field("Sort key condition", skOp), field("value", input("q-sk", "value")), field("and (between)", input("q-sk2", "upper bound"))),
    el("div", { class: "row" },
      field("Filter expression", el("input", { id: "q-filter", size: 34, placeholder: "e.g. price > :p" })),
      field("its values (DynamoDB JSON)", el("input", { id: "q-filter-values", size: 30, placeholder: '{":p": {"N": "10"}}' })),
      field("Projection", input("q-projection", "a, b.c")),
      field("Limit", el("input", { id: "q-limit", size: 5 }))),
    el("div", { class: "row" },
      el("label", { style: "flex-direction:row;gap:6px" }, el("input", { type: "checkbox", id: "q-desc" }), "descending"),
      el("label", { style: "flex-direction:row;gap:6px" }, el("input", { type: "checkbox", id: "q-consistent" }), "strongly consistent"),
      el("button", { id: "q-run", onclick: run }, "Run"))),
  err, out,
  el("h2", {}, "The same call from the aws CLI"), cli,
  el("h2", {}, "… and from boto3"), py);
  showKeys();
}

function streamTab(body, t) {
  const arn = t.LatestStreamArn;
  if (!arn || !(t.StreamSpecification && t.StreamSpecification.StreamEnabled)) {
    body.replaceChildren(el("p", { class: "muted", id: "stream-off" }, "This table has no stream enabled (UpdateTable with a StreamSpecification turns one on)."));
    return;
  }
  const err = el("div", { class: "error", id: "stream-error" });
  const rows = el("tbody", { id: "stream-records" });
  const iterators = new Map(); // shard id -> iterator (null: closed and drained)
  let polls = 0;
  const discover = async () => {
    const d = (await api("DescribeStream", { StreamArn: arn }, true)).StreamDescription;
    for (const s of d.Shards) {
      if (iterators.has(s.ShardId)) continue;
      // Shards open when the tail started begin at their end; newer ones from their start.
      const type = polls === 0 ? "LATEST" : "TRIM_HORIZON";
      if (polls === 0 && s.SequenceNumberRange && s.SequenceNumberRange.EndingSequenceNumber) { iterators.set(s.ShardId, null); continue; }
      const it = await api("GetShardIterator", { StreamArn: arn, ShardId: s.ShardId, ShardIteratorType: type }, true);
      iterators.set(s.ShardId, it.ShardIterator);
    }
  };
  const poll = async () => {
    try {
      if (polls % 10 === 0) await discover();
      polls++;
      for (const [shard, it] of iterators) {
        if (!it) continue;
        const r = await api("GetRecords", { ShardIterator: it, Limit: 100 }, true);
        iterators.set(shard, r.NextShardIterator || null);
        for (const rec of r.Records) {
          const d = rec.dynamodb || {};
          rows.prepend(el("tr", { class: "stream-record" },
            el("td", {}, fmtTime((d.ApproximateCreationDateTime || 0) * 1000)),
            el("td", {}, rec.eventName),
            el("td", { class: "item-cell" }, JSON.stringify(plainItem(d.Keys || {}))),
            el("td", { class: "item-cell" }, d.NewImage ? JSON.stringify(plainItem(d.NewImage)) : "—"),
            el("td", { class: "item-cell" }, d.OldImage ? JSON.stringify(plainItem(d.OldImage)) : "—")));
        }
      }
      err.textContent = "";
    } catch (e) { showError(err, e); }
  };
  body.replaceChildren(
    el("p", { class: "muted" }, "Live tail of ", el("code", {}, arn), " (new records appear at the top; polled every second)."),
    err,
    el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["Time", "Event", "Keys", "New image", "Old image"].map(h => el("th", {}, h)))),
      rows));
  poll();
  every(1000, poll);
}

// ------------------------------------------------------------------ storage

async function storageOf(body, name) {
  const [r, st] = await Promise.all([consoleGet("/console/api/storage", `table=${encodeURIComponent(name)}`), status()]);
  if (!r.ok) throw new Error(await r.text());
  const s = await r.json();
  const rows = s.partitions.map(p => el("tr", { class: "partition" },
    el("td", { class: "num" }, p.partition),
    el("td", { class: "num" }, p.log_tail - p.compacted_through),
    el("td", { class: "num" }, `${p.compacted_through} / ${p.log_tail}`),
    el("td", { class: "num" }, fmtBytes(p.tail_bytes)),
    el("td", {}, p.runs.length ? p.runs.map(x => `L${x.level}: ${x.ssts} SST${x.ssts === 1 ? "" : "s"}, ${fmtBytes(x.bytes)}`).join("; ") : "none"),
    el("td", { class: "num" }, fmtBytes(p.runs.reduce((a, x) => a + x.bytes, 0))),
    el("td", { class: "num" }, p.manifest_version),
    el("td", {}, fmtTime(p.last_compaction_ms))));
  const c = st.compaction;
  body.replaceChildren(
    el("h2", {}, "Partitions"),
    grid(["Partition", "Log segments", "Compacted / tail", "Tail memory", "Sorted runs (newest first)", "SST bytes", "Manifest", "Last compaction"], rows, { id: "storage-partitions" }),
    el("h2", {}, "Splits"),
    s.splits.length ? grid(["Partition", "Sealed at seq", "When"], s.splits.map(x => el("tr", {},
      el("td", { class: "num" }, x.partition), el("td", { class: "num" }, x.seal_seq), el("td", {}, fmtTime(x.sealed_at_micros / 1000)))))
      : el("p", { class: "muted" }, "This table has not split."),
    el("h2", {}, "Compaction and GC (this process, since start)"),
    grid(["Flushes", "Flush time", "Merges", "Merge time", "SSTs written", "Bytes flushed", "Bytes merged in/out", "GC passes", "Objects GC deleted"], [el("tr", {},
      el("td", { class: "num" }, c.flushes), el("td", { class: "num" }, fmtNum(c.flush_secs) + " s"),
      el("td", { class: "num" }, c.merges), el("td", { class: "num" }, fmtNum(c.merge_secs) + " s"),
      el("td", { class: "num" }, c.sst_puts), el("td", { class: "num" }, fmtBytes(c.flushed_bytes)),
      el("td", { class: "num" }, `${fmtBytes(c.merged_in_bytes)} / ${fmtBytes(c.merged_out_bytes)}`),
      el("td", { class: "num" }, c.gc_passes), el("td", { class: "num" }, c.gc_deleted))], { id: "gc" }));
}

async function storagePage(main, selected) {
  const st = await status();
  const names = st.tables.map(t => t.name);
  const name = selected || names[0];
  const pick = el("select", { id: "storage-table", onchange: () => { location.hash = `#/storage/${encodeURIComponent(pick.value)}`; } },
    names.map(n => el("option", { value: n, selected: n === name || undefined }, n)));
  const body = el("div");
  main.replaceChildren(el("h1", {}, "Storage"), names.length ? el("div", { class: "row" }, el("label", {}, "Table", pick)) : el("p", { class: "muted" }, "No tables yet."), body);
  if (name) await storageOf(body, name);
}

// ------------------------------------------------------------------ operations

const WRITES = new Set(["PutItem", "UpdateItem", "DeleteItem"]);
const READS = new Set(["GetItem", "Query", "Scan"]);

async function operationsPage(main) {
  const draw = async () => {
    const st = await status();
    $("#region").textContent = `region ${st.region}`;
    const w = st.window_secs;
    const series = st.series;
    const ops = [...new Set(series.flatMap(x => Object.keys(x.ops)))];
    const totalsOf = op => series.reduce((a, x) => a + ((x.ops[op] || {}).requests || 0), 0);
    const top = ops.sort((a, b) => totalsOf(b) - totalsOf(a)).slice(0, 6);
    const pts = (op, f) => series.map(x => [x.t, x.ops[op] ? f(x.ops[op]) : 0]);
    const plots = el("div", { class: "plots", id: "ops-plots" },
      Plot.lines("Requests per second", top.map(op => ({ name: op, points: pts(op, o => o.requests / w) })), `by operation, ${w} s windows`),
      Plot.lines("Latency p50", top.map(op => ({ name: op, points: pts(op, o => o.p50_ms) })), "ms"),
      Plot.lines("Latency p99", top.map(op => ({ name: op, points: pts(op, o => o.p99_ms) })), "ms"),
      Plot.lines("Errors per second", top.map(op => ({ name: op, points: pts(op, o => Object.values(o.errors).reduce((a, b) => a + b, 0) / w) })), "by operation"));
    const errors = {};
    for (const x of series) for (const [op, o] of Object.entries(x.ops)) for (const [code, n] of Object.entries(o.errors)) {
      const k = `${op}\u0000${code}`;
      errors[k] = (errors[k] || 0) + n;
    }
    const errorRows = Object.entries(errors).map(([k, n]) => { const [op, code] = k.split("\u0000"); return el("tr", {}, el("td", {}, op), el("td", {}, code), el("td", { class: "num" }, n)); });
    const p = st.prices;
    const costRows = Object.entries(st.operations).map(([op, o]) => {
      const n = o.requests || 0;
      const per = k => (n ? o.store[k] / n : 0);
      const s3 = n ? (per("PUT") + per("LIST")) * p.s3_put_per_million + (per("GET") + per("HEAD")) * p.s3_get_per_million : null;
      const ddb = WRITES.has(op) ? p.ddb_write_per_million : READS.has(op) ? p.ddb_read_per_million : null;
      return el("tr", { "data-op": op },
        el("td", {}, op), el("td", { class: "num" }, n || "—"), el("td", { class: "num" }, o.errors || 0),
        ...["GET", "PUT", "LIST", "HEAD", "DELETE"].map(k => el("td", { class: "num" }, n ? fmtNum(per(k), 3) : o.store[k])),
        el("td", { class: "num" }, s3 === null ? "—" : "$" + fmtNum(s3, 3)),
        el("td", { class: "num" }, ddb === null ? "—" : (op === "Query" || op === "Scan" ? "≥ $" : "$") + fmtNum(ddb, 3)));
    });
    const caches = st.caches.map(c => el("tr", {},
      el("td", {}, c.name), el("td", { class: "num" }, c.hits), el("td", { class: "num" }, c.misses),
      el("td", { class: "num" }, fmtNum(c.hit_ratio * 100, 1) + "%"), el("td", { class: "num" }, c.evictions),
      el("td", { class: "num" }, `${fmtBytes(c.bytes)} / ${fmtBytes(c.capacity)}`)));
    const cm = st.commits;
    $("#ops-body").replaceChildren(
      plots,
      el("h2", {}, "Requests, store requests per request, and cost per million requests"),
      grid(["Operation", "Requests", "Errors", "GET", "PUT", "LIST", "HEAD", "DELETE", "Strata: S3 requests", "DynamoDB on-demand"], costRows, { id: "ops-table" }),
      el("p", { class: "muted" }, `Store requests are counted per operation whose request made them (a group commit's PUT counts once, for the request that led it; "background" is compaction, GC, replication and indexes). Costs per million requests at ${st.prices_as_of}: S3 PUT/LIST $${p.s3_put_per_million}, GET/HEAD $${p.s3_get_per_million} per million; DynamoDB on-demand $${p.ddb_write_per_million} per million write units and $${p.ddb_read_per_million} per million read units, for items up to 1 KB (writes) or 4 KB (strong reads; eventual reads cost half). Change them with strata serve --price NAME=VALUE.`),
      el("p", { class: "muted" }, `Group commit: ${cm.puts} log PUTs, ${cm.segments} segments, ${cm.writes} writes (${fmtNum(cm.writes_per_put)} writes per PUT).`),
      el("h2", {}, "Errors by code (last 10 minutes)"),
      errorRows.length ? grid(["Operation", "Code", "Count"], errorRows, { id: "errors-table" }) : el("p", { class: "muted", id: "errors-table" }, "None."),
      el("h2", {}, "Caches"),
      grid(["Cache", "Hits", "Misses", "Hit ratio", "Evictions", "Held / bound"], caches, { id: "caches" }));
  };
  main.replaceChildren(el("h1", {}, "Operations"), el("p", { class: "muted" }, "This process since it started; plots over the last 10 minutes, refreshed every 5 seconds."), el("div", { id: "ops-body" }));
  await draw();
  every(5000, () => draw().catch(() => {}));
}

// ------------------------------------------------------------------ replication

async function replicationPage(main) {
  const draw = async () => {
    const [st, tables] = await Promise.all([status(), describeAll()]);
    const global = tables.filter(t => (t.Replicas || []).length);
    const lag = st.replication.map(r => el("tr", { "data-replica": `${r.table}/${r.region}` },
      el("td", {}, r.table), el("td", {}, r.region), el("td", { class: "num" }, fmtNum(r.behind_ms / 1000, 1) + " s"),
      el("td", { class: "num" }, r.backlog_segments), el("td", {}, fmtTime(r.checked_ms))));
    $("#repl-body").replaceChildren(
      el("p", {}, `This region: ${st.region}. Other regions configured: ${st.regions.length ? st.regions.join(", ") : "none (strata serve --replica REGION=URL)"}.`),
      el("h2", {}, "Global tables"),
      global.length ? grid(["Table", "Replicas"], global.map(t => el("tr", {}, el("td", {}, t.TableName),
        el("td", {}, t.Replicas.map(r => `${r.RegionName} (${r.ReplicaStatus || "ACTIVE"})`).join(", "))))) : el("p", { class: "muted" }, "No global tables."),
      el("h2", {}, "Lag per replica (when the last pass started)"),
      lag.length ? grid(["Table", "To region", "Behind", "Backlog (segments)", "Checked"], lag, { id: "replication-table" })
        : el("p", { class: "muted", id: "replication-table" }, "No replication pass has run in this process."));
  };
  main.replaceChildren(el("h1", {}, "Replication"), el("div", { id: "repl-body" }));
  await draw();
  every(5000, () => draw().catch(() => {}));
}

// ------------------------------------------------------------------ start

window.addEventListener("hashchange", route);
// The region signatures are scoped to (not a secret: answered unsigned).
fetch("/console/api/region").then(r => r.json()).then(j => {
  region = j.region;
  $("#region").textContent = `region ${region}`;
}).catch(() => {}).then(route);

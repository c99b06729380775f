#!/usr/bin/env node
// validate.js - validates Kubernetes objects (a JSON array on stdin) against the Kubernetes API.
//
//   node validate.js < objects.json      prints one line per problem, exits 1 if any
//
// Two layers, both from the npm package kubernetes-models (the Kubernetes OpenAPI definitions
// compiled to JSON-Schema validators, maintained with each Kubernetes release):
//   1. schema: each object's model class .validate() (types, required fields, enums, formats);
//   2. strict: every field must be one the API defines (what `kubeconform -strict` and the API
//      server's strict field validation refuse, and what the compiled schemas let through):
//      the field lists come from the package's type declarations (*.d.ts), walked along the
//      object.
// Kinds that are not core Kubernetes (SecretProviderClass of the Secrets Store CSI driver) are
// checked against the driver's v1 CRD fields written out below.
"use strict";
const fs = require("fs");
const path = require("path");

const NM = path.join(__dirname, "node_modules");
const MODELS = path.join(NM, "kubernetes-models");
const MACHINERY = path.join(NM, "@kubernetes-models", "apimachinery");

// Global interface name (IIoK8sApiCoreV1Probe) -> {field: type text}.
const registry = new Map();

function parse_dts(file) {
  const text = fs.readFileSync(file, "utf8");
  const exp = /export \{ (I\w+) as (IIoK8s\w+)/.exec(text);
  if (!exp) return;
  const local = exp[1], global = exp[2];
  const start = text.indexOf("export interface " + local + " ");
  if (start < 0) return;
  const open = text.indexOf("{", start);
  const fields = {};
  let depth = 0, i = open, line_start = open + 1;
  for (; i < text.length; i++) {
    const ch = text[i];
    if (ch === "{") {
      depth++;
      if (depth === 2) { // a map or inline type over several lines: "labels"?: {, "x"?: Array<{
        const m = /^"([^"]+)"\??:\s*(Array<)?$/.exec(text.slice(line_start, i).trim());
        if (m) fields[m[1]] = "inline"; // its values are checked by the schema layer only
      }
    }
    else if (ch === "}") { depth--; if (depth === 0) break; }
    else if (ch === "\n" && depth === 1) {
      const line = text.slice(line_start, i).trim();
      const m = /^"([^"]+)"\??: (.*);?$/.exec(line);
      if (m) fields[m[1]] = m[2];
      line_start = i + 1;
    }
    if (ch === "\n" && depth !== 1) line_start = i + 1;
  }
  registry.set(global, fields);
}

function walk_dir(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== "node_modules" && e.name !== "_schemas") walk_dir(p); }
    else if (e.name.endsWith(".d.ts")) parse_dts(p);
  }
}

// Fields of a Secrets Store CSI driver SecretProviderClass (secrets-store.csi.x-k8s.io/v1).
const SPC = {
  "": { apiVersion: "string", kind: "string", metadata: "IIoK8sApimachineryPkgApisMetaV1ObjectMeta", spec: "spc.spec" },
  "spc.spec": { provider: "string", parameters: "map", secretObjects: "Array<spc.secretObject>" },
  "spc.secretObject": { secretName: "string", type: "string", labels: "map", annotations: "map", data: "Array<spc.data>" },
  "spc.data": { objectName: "string", key: "string" },
};

function model_of(type) {
  let m = /^Array<(IIoK8s\w+|spc\.\w+)>/.exec(type);
  if (m) return { array: true, name: m[1] };
  m = /^(IIoK8s\w+|spc\.\w+)\b/.exec(type);
  if (m) return { array: false, name: m[1] };
  return null;
}

function strict(obj, fields, where, problems) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return;
  for (const key of Object.keys(obj)) {
    if (!(key in fields)) { problems.push(where + "/" + key + ": unknown field"); continue; }
    const m = model_of(fields[key]);
    if (!m) continue;
    const sub = m.name.startsWith("spc.") ? SPC[m.name] : registry.get(m.name);
    if (!sub || Object.keys(sub).length === 0) continue; // a scalar alias (Quantity, IntOrString)
    if (m.array) {
      if (Array.isArray(obj[key])) obj[key].forEach((v, i) => strict(v, sub, where + "/" + key + "/" + i, problems));
    } else strict(obj[key], sub, where + "/" + key, problems);
  }
}

function spc_types(obj, problems, where) {
  const spec = obj.spec || {};
  if (typeof spec.provider !== "string" || !spec.provider) problems.push(where + "/spec/provider: required string");
  for (const [k, v] of Object.entries(spec.parameters || {}))
    if (typeof v !== "string") problems.push(where + "/spec/parameters/" + k + ": must be a string");
}

function main() {
  walk_dir(MODELS);
  walk_dir(MACHINERY);
  if (registry.size < 500) { console.log("validator: only " + registry.size + " types read from " + MODELS); process.exit(2); }
  const objects = JSON.parse(fs.readFileSync(0, "utf8"));
  const problems = [];
  for (const obj of objects) {
    const where = obj.kind + "/" + ((obj.metadata || {}).name || "?");
    if (obj.apiVersion === "secrets-store.csi.x-k8s.io/v1" && obj.kind === "SecretProviderClass") {
      spc_types(obj, problems, where);
      strict(obj, SPC[""], where, problems);
      continue;
    }
    const group = obj.apiVersion; // "v1", "apps/v1", "networking.k8s.io/v1": the package's directories
    let Model;
    try { Model = require(path.join(MODELS, group, obj.kind))[obj.kind]; }
    catch (e) { problems.push(where + ": no schema for " + obj.apiVersion + " " + obj.kind); continue; }
    try { new Model(obj).validate(); }
    catch (e) { problems.push(where + ": " + e.message); }
    const global = Object.keys(require(path.join(MODELS, group, obj.kind))).find((k) => k.startsWith("IoK8s"));
    const fields = registry.get("I" + global);
    if (!fields) { problems.push(where + ": no field list for " + obj.kind); continue; }
    strict(obj, fields, where, problems);
  }
  for (const p of problems) console.log(p);
  console.log("validator: " + objects.length + " objects, " + problems.length + " problems");
  process.exit(problems.length ? 1 : 0);
}
main();

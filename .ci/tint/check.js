// Compiles every shader with the browser's WebGPU (Chrome's Tint) and creates a compute pipeline for every
// (entry point, override constants) the launchers create. Results go to the console as lines starting with
// "TINT: ", which .ci/tint-check reads from Chromium's stderr log; the last one is "TINT: DONE ...".
//
// Query: ?repo=<repository root URL>&pipelines=<URL of the JSON written by tests/translate.rs>&files=a,b,...
"use strict";

// One log line per report: Chromium's log would split a multi-line message (Dawn's error context) over lines.
const report = (line) => console.log("TINT: " + line.trim().replace(/\s*\n\s*/g, " | "));

// Features the adapter must have for a shader's `enable` directives; `null`: no browser has it.
const EXTENSIONS = {
  f16: "shader-f16",
  wgpu_cooperative_matrix: null, // wgpu's own extension; Tint has none of that name
};

function enables(source) {
  const out = [];
  for (const line of source.split("\n")) {
    const m = line.trim().match(/^enable\s+([^;]+);/);
    if (m) out.push(...m[1].split(",").map((s) => s.trim()).filter((s) => s));
  }
  return out;
}

async function fetchText(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.text();
}

// Every error and warning of one module, with the file's own line:column.
function messages(file, info) {
  return info.messages.map((m) => ({
    type: m.type,
    text: `${file}:${m.lineNum}:${m.linePos}: ${m.type}: ${m.message}`,
  }));
}

async function checkShader(device, file, source, pipelines, counts) {
  const missing = [];
  for (const ext of enables(source)) {
    const feature = ext in EXTENSIONS ? EXTENSIONS[ext] : undefined;
    if (feature === null) missing.push(`'enable ${ext};' (a wgpu extension Tint does not have)`);
    else if (feature !== undefined && !device.features.has(feature))
      missing.push(`'enable ${ext};' (feature ${feature}, which this adapter lacks)`);
  }
  if (missing.length) {
    counts.notChecked++;
    report(`NOT-CHECKED ${file}: needs ${missing.join(" and ")}; its ${pipelines.length} pipeline(s) are not checked by Tint`);
    return;
  }
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: file, code: source });
  const info = await module.getCompilationInfo();
  const scope = await device.popErrorScope();
  let failed = false;
  for (const m of messages(file, info)) {
    if (m.type === "error") failed = true;
    report((m.type === "error" ? "ERROR " : "WARNING ") + m.text);
  }
  if (scope && !failed) {
    failed = true;
    report(`ERROR ${file}: ${scope.message}`);
  }
  if (failed) {
    counts.errors++;
    return;
  }
  const entries = new Set();
  let ok = 0;
  for (const p of pipelines) {
    const what = `${file} entry ${p.entry} constants ${JSON.stringify(p.constants)} (${p.from})`;
    try {
      await device.createComputePipelineAsync({
        label: what,
        layout: "auto",
        compute: { module, entryPoint: p.entry, constants: p.constants },
      });
      entries.add(p.entry);
      ok++;
    } catch (e) {
      counts.errors++;
      report(`ERROR ${what}: ${e.message}`);
    }
  }
  counts.checked++;
  counts.pipelines += ok;
  const status = ok === pipelines.length ? "OK" : "FAILED";
  report(`${status} ${file}: module and ${ok} of ${pipelines.length} pipeline(s), entries ${[...entries].sort().join(", ")}`);
}

async function main() {
  const q = new URLSearchParams(location.search);
  const repo = q.get("repo");
  const files = q.get("files").split(",").filter((s) => s);
  const list = JSON.parse(await fetchText(q.get("pipelines"))).pipelines;
  if (!navigator.gpu) throw new Error("navigator.gpu is missing: WebGPU is not enabled");
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const ai = adapter.info || {};
  report(`ADAPTER ${ai.vendor} ${ai.architecture} ${ai.description}; features ${[...adapter.features].sort().join(" ")}`);
  // The adapter's own limits, as wgpu requests them (workgroup storage, invocations per workgroup).
  const requiredLimits = {};
  for (const k in adapter.limits) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures = ["shader-f16"].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  device.addEventListener("uncapturederror", (e) => report(`ERROR uncaptured: ${e.error.message}`));
  const counts = { checked: 0, pipelines: 0, errors: 0, notChecked: 0 };
  for (const stem of files) {
    const file = `shaders/${stem}.wgsl`;
    const source = await fetchText(`${repo}/${file}`);
    const pipelines = list.filter((p) => p.file === file);
    if (!pipelines.length) {
      counts.errors++;
      report(`ERROR ${file}: no pipeline of it in the list from tests/translate.rs`);
    }
    await checkShader(device, file, source, pipelines, counts);
  }
  const unknown = list.filter((p) => !files.includes(p.shader));
  for (const p of unknown) {
    counts.errors++;
    report(`ERROR ${p.file}: listed by tests/translate.rs but not in shaders/`);
  }
  report(`DONE files=${counts.checked} pipelines=${counts.pipelines} not_checked=${counts.notChecked} errors=${counts.errors}`);
}

main().catch((e) => report(`DONE fatal: ${e.message || e}`));

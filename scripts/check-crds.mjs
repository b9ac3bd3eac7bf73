// Validates custom resources offline, the ones kubernetes-validate has no schema for: ArgoCD's
// Application, ApplicationSet and AppProject, and prometheus-operator's ServiceMonitor and
// PrometheusRule. Twice:
//   1. against the JSON schemas of @kubernetes-models/argo-cd (generated from ArgoCD v3's
//      argoproj.io/v1alpha1 API types, which ArgoCD's CRDs are generated from) and
//      @kubernetes-models/prometheus-operator (generated from its CRDs): types, enums,
//      patterns, required fields;
//   2. strictly: every document becomes a TypeScript object literal typed with the same
//      packages' interfaces and is compiled with `tsc --strict`, which refuses any field the
//      API does not have (a misspelt `selfHeel` passes step 1, as the API server would prune
//      it silently).
// Documents of built-in kinds (core, apps, batch, autoscaling, policy, *.k8s.io) are left to
// kubernetes-validate; any other kind is an error, so no document goes unchecked.
// Usage (from scripts/check-deploy.sh): node check-crds.mjs WORKDIR FILE... where WORKDIR
// holds node_modules with those two packages, typescript and js-yaml.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [workdir, ...files] = process.argv.slice(2);
if (!workdir || files.length === 0) {
  console.error("usage: node check-crds.mjs WORKDIR FILE...");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(workdir), "package.json"));
const load = async (spec) => import(pathToFileURL(require.resolve(spec)).href);
const yaml = (await load("js-yaml")).default;
const ts = (await load("typescript")).default;

const MODELS = {
  "argoproj.io/v1alpha1": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};
const KINDS = {
  "argoproj.io/v1alpha1": ["Application", "ApplicationSet", "AppProject"],
  "monitoring.coreos.com/v1": ["ServiceMonitor", "PrometheusRule"],
};
const BUILTIN = /^(v1|(apps|batch|autoscaling|policy|[a-z.]+\.k8s\.io)\/v[0-9a-z]+)$/;
let builtin = 0;
let failed = 0;
let declarations = "";
let count = 0;
for (const file of files) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d);
  docs.forEach((doc, i) => {
    const where = `${file}#${i + 1} (${doc.kind} ${doc.metadata?.name})`;
    if (BUILTIN.test(doc.apiVersion)) {
      builtin++;
      return;
    }
    if (!(KINDS[doc.apiVersion] ?? []).includes(doc.kind)) {
      console.error(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
      failed++;
      return;
    }
    declarations +=
      `import type { I${doc.kind} as T${count} } from ` +
      `"${MODELS[doc.apiVersion]}/${doc.kind}";\n` +
      `// ${where}\nexport const doc${count}: T${count} = ${JSON.stringify(doc, null, 2)};\n`;
    count++;
    docs[i] = { where, doc };
  });
  for (const entry of docs) {
    if (!entry?.where) continue;
    const { where, doc } = entry;
    // By file: the package exports its models for `import` only, not to require.resolve.
    const model = path.join(
      path.resolve(workdir),
      `node_modules/${MODELS[doc.apiVersion]}/${doc.kind}.js`,
    );
    const mod = await import(pathToFileURL(model).href);
    try {
      new mod[doc.kind](doc).validate();
      console.log(`   ${where}: schema OK`);
    } catch (e) {
      console.error(`${where}: ${e.message}`);
      failed++;
    }
  }
}

// Step 2: the strict (unknown field) check by the TypeScript compiler.
const tsFile = path.join(path.resolve(workdir), "crd-manifests.check.ts");
fs.writeFileSync(tsFile, declarations);
const program = ts.createProgram([tsFile], {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  skipLibCheck: true,
  types: [],
});
const diagnostics = ts.getPreEmitDiagnostics(program);
for (const d of diagnostics) {
  const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  if (d.file) {
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    // Name the manifest: the nearest `// FILE#N (...)` comment above the error.
    const above = d.file.text.slice(0, d.start ?? 0).lastIndexOf("\n// ");
    const doc = d.file.text.slice(above + 4, d.file.text.indexOf("\n", above + 4));
    console.error(`${doc}: ${msg} (${path.basename(d.file.fileName)}:${line + 1})`);
  } else {
    console.error(msg);
  }
  failed++;
}
fs.rmSync(tsFile);
if (failed) {
  console.error(`check-crds: ${failed} problem(s)`);
  process.exit(1);
}
console.log(
  `check-crds: ${count} custom resource(s) valid, no unknown fields` +
    (builtin ? ` (${builtin} built-in object(s) left to kubernetes-validate)` : ""),
);

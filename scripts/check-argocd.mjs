// Validates ArgoCD manifests (Application, ApplicationSet, AppProject) offline, twice:
//   1. against the JSON schemas of @kubernetes-models/argo-cd (generated from ArgoCD v3's
//      argoproj.io/v1alpha1 API types, the types ArgoCD's CRDs are generated from): types,
//      enums, patterns, required fields;
//   2. strictly: every document becomes a TypeScript object literal typed with the same
//      package's interfaces and is compiled with `tsc --strict`, which refuses any field the
//      API does not have (a misspelt `selfHeel` passes step 1, as the API server would prune
//      it silently).
// Usage (from scripts/check-deploy.sh): node check-argocd.mjs WORKDIR FILE... where WORKDIR
// holds node_modules with @kubernetes-models/argo-cd, typescript and js-yaml.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [workdir, ...files] = process.argv.slice(2);
if (!workdir || files.length === 0) {
  console.error("usage: node check-argocd.mjs WORKDIR FILE...");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(workdir), "package.json"));
const load = async (spec) => import(pathToFileURL(require.resolve(spec)).href);
const yaml = (await load("js-yaml")).default;
const ts = (await load("typescript")).default;

const KINDS = ["Application", "ApplicationSet", "AppProject"];
let failed = 0;
let declarations = "";
let count = 0;
for (const file of files) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d);
  docs.forEach((doc, i) => {
    const where = `${file}#${i + 1} (${doc.kind} ${doc.metadata?.name})`;
    if (doc.apiVersion !== "argoproj.io/v1alpha1" || !KINDS.includes(doc.kind)) {
      console.error(`${where}: not an argoproj.io/v1alpha1 ${KINDS.join("/")}`);
      failed++;
      return;
    }
    declarations +=
      `import type { I${doc.kind} as T${count} } from ` +
      `"@kubernetes-models/argo-cd/argoproj.io/v1alpha1/${doc.kind}";\n` +
      `// ${where}\nexport const doc${count}: T${count} = ${JSON.stringify(doc, null, 2)};\n`;
    count++;
    docs[i] = { where, doc };
  });
  for (const entry of docs) {
    if (!entry.where) continue;
    const { where, doc } = entry;
    // By file: the package exports its models for `import` only, not to require.resolve.
    const model = path.join(
      path.resolve(workdir),
      `node_modules/@kubernetes-models/argo-cd/argoproj.io/v1alpha1/${doc.kind}.js`,
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
const tsFile = path.join(path.resolve(workdir), "argocd-manifests.check.ts");
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
  console.error(`check-argocd: ${failed} problem(s)`);
  process.exit(1);
}
console.log(`check-argocd: ${count} manifest(s) valid, no unknown fields`);

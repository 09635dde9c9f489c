// Builds the cohort-cleanup policy into ../dist/cohort-cleanup.wasm.
//
// Uses the componentize-js API rather than `jco componentize`, which fails
// with "failed to get path metadata" in jco 1.35.0. Every engine feature is
// disabled so the component is "pure": it imports only what the world
// declares (lethe:policy/host) and no WASI at all, as Lethe requires.
import { componentize } from "@bytecodealliance/componentize-js";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "dist", "cohort-cleanup.wasm");

const { component } = await componentize({
  sourcePath: join(here, "policy.js"),
  witPath: join(here, "..", "..", "wit"),
  worldName: "deletion-policy",
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});

await mkdir(dirname(out), { recursive: true });
await writeFile(out, component);
console.error(`wrote ${out} (${component.length} bytes)`);

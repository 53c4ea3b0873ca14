// The contract has one source: the package's schemas and types are regenerated from ../../schemas.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";

test("schemas and generated types match the worker's JSON Schemas", () => {
  const out = execFileSync(process.execPath, ["scripts/generate.mjs", "--check"], { encoding: "utf8" });
  assert.match(out, /up to date/);
});

// Wire contract v1, validated with Ajv against the same JSON Schemas the worker's models generate.
import { createRequire } from "node:module";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { CallCompleted } from "./generated/call-completed.js";
import type { CallFailed } from "./generated/call-failed.js";
import type { CallFeedback } from "./generated/call-feedback.js";
import type { RoutingHeuristic } from "./generated/routing-heuristic.js";
import type { Experiment } from "./generated/routing-experiment.js";

export type { CallCompleted, CallFailed, CallFeedback, RoutingHeuristic, Experiment };
export type CallEvent = CallCompleted | CallFailed;
export type Layer = CallCompleted["layer"];

const require = createRequire(import.meta.url);
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
for (const name of ["call-completed", "call-failed", "call-feedback", "routing-heuristic", "routing-alert", "routing-experiment"]) {
  ajv.addSchema(require(`../../schemas/${name}.v1.schema.json`));
}

/** An event or record that violates the v1 contract; nothing was sent. */
export class ContractError extends Error {
  constructor(what: string, readonly problems: string[]) {
    super(`${what} refused: ${problems.join("; ")}`);
    this.name = "ContractError";
  }
}

function validator(ref: string) {
  const validate = ajv.getSchema(ref);
  if (!validate) throw new Error(`schema ${ref} is missing`);
  return (what: string, value: unknown): void => {
    if (!validate(value)) {
      const problems = (validate.errors ?? []).map((e) => `${e.instancePath || "(event)"} ${e.message ?? "is invalid"}`);
      throw new ContractError(what, problems);
    }
    if (JSON.stringify(value).includes("\\u0000")) throw new ContractError(what, ["a string contains U+0000"]);
  };
}

export const checkCompleted = validator("urn:gateway-telemetry:CallCompleted:v1#/$defs/CallCompleted");
export const checkFailed = validator("urn:gateway-telemetry:CallFailed:v1#/$defs/CallFailed");
export const checkFeedback = validator("urn:gateway-telemetry:CallFeedback:v1#/$defs/CallFeedback");
export const checkHeuristic = validator("urn:gateway-telemetry:RoutingHeuristic:v1");
export const checkExperiment = validator("urn:gateway-telemetry:Experiment:v1");

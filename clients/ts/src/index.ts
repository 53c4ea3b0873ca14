export { CallEmitter, completed, failed, type EmitterOptions, type EmitterStats } from "./emitter.js";
export { ContractError, checkCompleted, checkFailed, checkHeuristic, type CallEvent, type Layer } from "./contract.js";
export type { CallCompleted } from "./generated/call-completed.js";
export type { CallFailed } from "./generated/call-failed.js";
export type { RoutingHeuristic } from "./generated/routing-heuristic.js";
export type { RoutingAlert } from "./generated/routing-alert.js";
export { HeuristicsSubscriber, type SubscriberOptions } from "./subscriber.js";
export { RoutingTable, chooseModel, hashUnit, EXPLORE_SHARE } from "./routing.js";
export { redactText } from "./redaction.js";

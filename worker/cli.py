"""`telemetry-worker`: run the worker, migrate, report, status, simulate traffic, export tests, evaluate routing, schemas."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from rich.console import Console

from worker import logs
from worker.settings import Settings, get_settings

# Wide enough for the report's tables when output goes to a file or a CI log.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from faust.worker import Worker

    from worker.app import create_app

    app = create_app(settings)
    worker = Worker(
        app, loglevel=settings.log_level.upper(), quiet=True, logging_config=logs.config(settings.log_level)
    )
    worker.execute_from_commandline()  # returns only through SystemExit
    return 0


async def _migrate(settings: Settings) -> list[str]:
    from worker.store.db import wait_for_pool
    from worker.store.migrate import migrate

    pool = await wait_for_pool(settings.database_url, attempts=10, max_size=1)
    try:
        async with pool.acquire() as conn:
            return await migrate(conn)
    finally:
        await pool.close()


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(_migrate(settings))
    console.print(f"migrations applied: {', '.join(applied) or 'none pending'}")
    return 0


async def _report(settings: Settings, task_type: str | None, overrides: dict[str, float] | None = None):
    from dataclasses import replace

    from worker.reporting.report import CandidateSetting, build_report, experiments
    from worker.store.db import connect
    from worker.store.rules import learned_records

    async with connect(settings.database_url) as conn:
        rules = [r for t, r in sorted((await learned_records(conn)).items()) if task_type in (None, t)]
        candidate = await CandidateSetting.of(conn, overrides, settings) if overrides else None
        report = await build_report(conn, task_type, candidate=candidate)
        return replace(report, experiments=await experiments(conn), rules=rules)


def candidate_weights(text: str) -> dict[str, float]:
    """`latency=0.2,cost=0.1` (snake_case or camelCase names) -> checked overrides."""
    from pydantic import ValidationError

    from worker.tools.requests import CandidateWeights

    pairs = [part.partition("=") for part in text.split(",") if part.strip()]
    if any(not sep for _, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected name=value pairs separated by commas, got {text!r}")
    camel = {"latency_ref_ms": "latencyRefMs", "cost_ref_usd": "costRefUsd", "value_usd": "valueUsd"}
    try:
        return CandidateWeights.model_validate(
            {camel.get(k.strip(), k.strip()): v.strip() for k, _, v in pairs}
        ).overrides()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'weights'}: {e['msg']}" for e in error.errors())
        raise argparse.ArgumentTypeError(problems) from None


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from worker.reporting.report import render

    report = asyncio.run(_report(settings, args.task_type, args.candidate_weights))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        render(report, console)
    return 0


def _cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    from worker.tools.mcp_server import run

    run(settings)
    return 0


def _cmd_otlp(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from worker.otlp.receiver import serve

    logs.configure(settings.log_level)

    async def until_signalled() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve(settings)

    asyncio.run(until_signalled())
    return 0


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from worker.simulation.producer import simulate
    from worker.simulation.traffic import Degradation

    degrade = Degradation(args.degrade_model, args.degrade_after) if args.degrade_model else None
    result = asyncio.run(
        simulate(
            settings,
            count=args.count,
            rate=args.rate,
            envelope=args.envelope,
            seed=args.seed,
            resend_fraction=args.resend_fraction,
            invalid_fraction=args.invalid_fraction,
            degrade=degrade,
            partitions=args.partitions,
            progress=not args.quiet,
            feedback_fraction=args.feedback_fraction,
        )
    )
    console.print(
        f"produced {result.ledger.calls:,} calls in {result.messages:,} messages over {result.seconds:.1f} s "
        f"({result.ledger.calls / max(result.seconds, 1e-9):,.0f} events/s); re-sent {result.resent:,}, "
        f"invalid {result.invalid:,}"
    )
    if args.ledger:
        ledger = {
            "calls": result.ledger.calls,
            "resent": result.resent,
            "invalid": result.invalid,
            "messages": result.messages,
            "failures_by_type": result.ledger.failures_by_type,
            "by_model_task": [
                {"model_id": m, "task_type": t, **vars(tally)}
                for (m, t), tally in sorted(result.ledger.by_model_task.items())
            ],
        }
        Path(args.ledger).write_text(json.dumps(ledger, indent=2))
    return 0


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from worker.reporting import status

    if args.wait is not None:
        caught_up = asyncio.run(status.wait_until_caught_up(settings, args.wait, err))
        if not caught_up:
            err.print(f"[red]the worker did not catch up within {args.wait:.0f} s[/red]")
    status.render(asyncio.run(status.partition_lags(settings)), console)
    status.render_heuristics(asyncio.run(status.heuristic_versions(settings)), console)
    return 0 if args.wait is None or caught_up else 1


async def _export(settings: Settings, framework: str, out: Path, category: str | None):
    from worker.reporting.export import export_tests
    from worker.store.db import connect

    async with connect(settings.database_url) as conn:
        return await export_tests(conn, framework, out, category)


def _cmd_export_tests(args: argparse.Namespace, settings: Settings) -> int:
    written = asyncio.run(_export(settings, args.framework, Path(args.out), args.category))
    console.print(f"wrote {len(written)} {args.framework} test files and README.md to {args.out}")
    return 0


def _tool_call(settings: Settings, name: str, fields: dict | bytes) -> int | dict:
    """A tool called from the shell through its own code (validation, service, answers), as over HTTP:
    the answer's body, or 2 once the refusal is printed."""
    body = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    outcome = asyncio.run(_experiment(settings, name, body))
    if outcome.status >= 400:
        err.print(f"[red]rejected:[/red] {outcome.body.get('message')}", markup=True, highlight=False)
        for d in outcome.body.get("detail") or []:
            if f"{d['field']}: {d['reason']}" != outcome.body.get("message"):
                err.print(f"  {d['field']}: {d['reason']}", markup=False, highlight=False)
        return 2
    return outcome.body


def _tool_write(settings: Settings, name: str, fields: dict | bytes, then: str | None) -> int:
    """`_tool_call`, then the answer as JSON and what happens next (`then`); the exit code."""
    answer = _tool_call(settings, name, fields)
    if isinstance(answer, int):
        return answer
    console.print_json(json.dumps(answer))
    if then:
        console.print(then)
    return 0


async def _read(settings: Settings, read):
    from worker.store.db import connect

    async with connect(settings.database_url) as conn:
        return await read(conn)


def _cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    """`list` reads the stored rules; `add` and `set-active` are the update_routing_heuristic tool."""
    from worker.store import rules

    if args.rules_command == "list":
        for record in asyncio.run(_read(settings, lambda conn: rules.rules(conn, active_only=not args.all))):
            console.print_json(json.dumps(record))
        return 0
    if args.rules_command == "add":
        fields = {"pattern": args.pattern, "preferredLayer": args.layer, "priority": args.priority}
        fields |= {"reasoning": args.reasoning} | ({"preferredModel": args.model} if args.model else {})
    else:
        row = asyncio.run(_read(settings, lambda conn: rules.manual_rule(conn, args.id)))
        if row is None:
            err.print(f"[red]error:[/red] no manual routing rule with id {args.id}")
            return 2
        fields = {"pattern": row["pattern"], "preferredLayer": row["preferred_layer"], "priority": row["priority"]}
        fields |= {"reasoning": row["reasoning"] or "", "ruleId": args.id, "active": args.active == "true"}
        fields |= {"preferredModel": row["preferred_model"]} if row["preferred_model"] else {}
    return _tool_write(
        settings, "update_routing_heuristic", fields, "saved; the group leader publishes it within a few seconds"
    )


def _cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """`declare` is the declare_model tool; `list` and `remove` read and change the catalogue directly."""
    from worker.store import catalogue

    if args.models_command == "declare":
        fields = {"modelId": args.model, "layer": args.layer}
        fields |= ({"taskTypes": args.task_type} if args.task_type else {}) | (
            {"provider": args.provider} if args.provider else {}
        )
        return _tool_write(
            settings, "declare_model", fields, "declared; the group leader explores it within a few seconds"
        )
    if args.models_command == "remove":
        removed = asyncio.run(_read(settings, lambda conn: catalogue.remove_model(conn, args.model)))
        console.print(
            f"removed {removed} catalogue entries of {args.model}"
            if removed
            else f"{args.model} was not declared (models seen in events stay in the catalogue while they are seen)"
        )
        return 0 if removed else 1
    for row in asyncio.run(_read(settings, catalogue.declared_models)):
        console.print_json(json.dumps(row, default=str))
    return 0


async def _reanchor(settings: Settings, args: argparse.Namespace) -> dict[int, tuple[int, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from worker.kafka_client import client_options
    from worker.store.db import connect
    from worker.store.offsets import reanchor, stored_offsets
    from worker.topics import partitions_of

    if args.topic not in settings.consumed_topics:
        raise LookupError(
            f"the worker does not consume {args.topic!r}, so it stores no offsets for it; it consumes "
            + ", ".join(sorted(settings.consumed_topics))
        )
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        partitions = [tp.partition for tp in await partitions_of(consumer, [args.topic])]
        if not partitions:
            raise LookupError(f"topic {args.topic!r} does not exist on the broker")
        wanted = [p for p in sorted(partitions) if args.partition is None or p == args.partition]
        if not wanted:
            raise LookupError(f"topic {args.topic!r} has no partition {args.partition}")
        tps = [TopicPartition(args.topic, p) for p in wanted]
        firsts, lasts = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    targets = firsts if args.to == "earliest" else lasts
    async with connect(settings.database_url) as conn:
        before = await stored_offsets(conn, settings.consumer_group, [(args.topic, p) for p in wanted])
        # a rewind over events of the current log reads again what was counted: only on purpose
        rewound = [tp.partition for tp in tps if targets[tp] < before[(args.topic, tp.partition)] <= lasts[tp]]
        if rewound and not args.rewind:
            raise LookupError(
                f"partitions {rewound} would be read again from {args.to}: their stored offsets lie inside the log, "
                f"so events already counted would be read again, and those older than DEDUPE_WINDOW_S "
                f"({settings.dedupe_window_s} s) counted twice. Pass --rewind to do it anyway (after a topic was "
                "recreated the stored offsets lie past the log's end and no flag is needed)"
            )
        after = await reanchor(conn, settings.consumer_group, args.topic, {tp.partition: targets[tp] for tp in tps})
    return {p: (before[(args.topic, p)], after[p]) for p in after}


def _cmd_offsets(args: argparse.Namespace, settings: Settings) -> int:
    try:
        moved = asyncio.run(_reanchor(settings, args))
    except LookupError as error:
        err.print(f"[red]error:[/red] {error}")
        return 2
    for partition, (before, after) in sorted(moved.items()):
        console.print(f"{args.topic}[{partition}]: stored offset {before} -> {after}")
    console.print(
        f"re-anchored {len(moved)} partitions of {args.topic} for group {settings.consumer_group} at the "
        f"{args.to} offsets; the workers resume within a few seconds"
    )
    return 0


EXPERIMENT_TOOLS = {
    "create": "create_experiment",
    "list": "list_experiments",
    "show": "get_experiment",
    "stop": "stop_experiment",
    "promote": "promote_experiment",
}


async def _experiment(settings: Settings, name: str, arguments: bytes):
    from worker.tools.invoke import invoke
    from worker.tools.service import ToolService

    service = await ToolService.connect(settings)
    try:
        return await invoke(service, name, arguments)
    finally:
        await service.close()


def _cmd_experiment(args: argparse.Namespace, settings: Settings) -> int:
    """The experiment tools, from a shell: the same validation, answers and errors as over HTTP."""
    command = args.experiment_command
    if command == "create":
        try:
            body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        except OSError as error:
            err.print(f"[red]error:[/red] cannot read {args.file}: {error}")
            return 2
    else:
        if command == "list":
            fields = {"status": args.status} if args.status else {}
        else:
            fields = {"experimentId": args.experiment_id}
            if command == "stop":
                fields["reason"] = args.reason
            if command == "promote" and args.arm:
                fields["arm"] = args.arm
            if command == "promote" and args.force:
                fields |= {"force": True, "reason": args.force}
        body = json.dumps(fields).encode()
    saved = "saved; the group leader publishes it within EXPERIMENTS_INTERVAL_S"
    return _tool_write(
        settings, EXPERIMENT_TOOLS[command], body, saved if command in ("create", "stop", "promote") else None
    )


def _cmd_record_test_results(args: argparse.Namespace, settings: Settings) -> int:
    """record_test_results from a CI job: the same validation and answer as over HTTP; exit 1 on a regression."""
    try:
        xml = Path(args.junit).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        err.print(f"[red]error:[/red] cannot read {args.junit}: {error}")
        return 2
    fields = {"junitXml": xml, "commit": args.commit, "environment": args.environment}
    if args.run_id:
        fields["runId"] = args.run_id
    body = _tool_call(settings, "record_test_results", fields)
    if isinstance(body, int):
        return body
    state = "recorded" if body["recorded"] else "already recorded (nothing changed)"
    console.print(
        f"run {body['runId']} {state}: {body['passed']} passed, {body['failed']} failed, {body['skipped']} skipped, "
        f"{body['notStubs']} other test cases ignored",
        markup=False,
        highlight=False,
    )
    if body["unknownStubs"]:
        console.print(f"stubs this worker does not know: {', '.join(body['unknownStubs'])}", markup=False)
    if body["regressions"]:
        err.print(f"regressed (failed after passing): {', '.join(body['regressions'])}", markup=False, highlight=False)
        return 1
    return 0


def _cmd_experiment_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import track

    from worker.routing_eval import experiments as ev

    scenarios = [s for s in ev.SCENARIOS if args.scenario in (None, s.name)]
    summaries = []
    for scenario in scenarios:
        timelines = [
            ev.run(scenario, seed)
            for seed in track(range(1, args.seeds + 1), description=scenario.name, console=err, transient=True)
        ]
        summaries.append(ev.summarise(scenario, timelines))
        if args.out:
            console.print(f"wrote {ev.plot(timelines[0], Path(args.out))}")
    console.print(ev.table(summaries))
    return 0


def _cmd_schemas(args: argparse.Namespace, settings: Settings) -> int:
    from worker import schemas

    folder = Path(args.out)
    if args.check:
        drift = schemas.stale(folder)
        if drift:
            err.print(f"schemas out of date: {', '.join(drift)}; run 'telemetry-worker schemas'")
            return 1
        console.print("schemas up to date")
        return 0
    for path in schemas.write(folder):
        console.print(f"wrote {path}")
    return 0


def _cmd_routing_eval(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from rich.progress import Progress

    from worker.routing_eval import evaluate, report
    from worker.routing_eval.scenarios import SCENARIOS

    names = args.scenario or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        err.print(f"[red]error:[/red] unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return 2
    outcomes: dict[str, list] = {}
    with Progress(console=err, transient=True, disable=args.quiet) as progress:
        job = progress.add_task("simulating", total=len(names) * args.seeds)
        for name in names:
            for seed in range(1, args.seeds + 1):
                progress.update(job, description=f"{name}, seed {seed}")
                scenario = dataclasses.replace(SCENARIOS[name], seed=seed)
                outcomes.setdefault(name, []).append(
                    evaluate.evaluate_scenario(scenario, comparisons=not args.no_comparisons)
                )
                progress.advance(job)
    report.print_table(outcomes, console)
    if args.out:
        for runs in outcomes.values():
            console.print(f"wrote {report.plot(runs[0], Path(args.out))}")
    return 0 if all(o.met for runs in outcomes.values() for o in runs) else 1


def _cmd_routing_replay(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import Progress

    from worker.routing.heuristics import Policy
    from worker.routing_eval import replay

    try:
        outcomes = replay.load(Path(args.data))
    except (OSError, ValueError, KeyError) as error:
        err.print(f"[red]error:[/red] {error}")
        return 2
    values = [float(v) for v in args.values.split(",")] if args.values else list(replay.DEFAULT_VALUES)
    policy = Policy(
        quality_prior_calls=settings.routing_quality_prior_calls, half_life_s=settings.heuristics_half_life_s
    )
    points: list = []
    with Progress(console=err, transient=True, disable=args.quiet) as progress:
        job = progress.add_task("replaying", total=len(values) * args.seeds)
        for v in values:
            for seed in range(1, args.seeds + 1):
                progress.update(job, description=f"V = ${v:g}, seed {seed}")
                one = replay.evaluate(
                    outcomes, [v], [seed], rate=args.rate, feedback_share=args.feedback_share, policy=policy
                )
                points += one.points
                progress.advance(job)
    result = replay.evaluate(outcomes, [], [])
    result.points = points
    result.checks = replay.checks(result)
    for t in replay.table(result):
        console.print(t)
    verdict = "met" if result.met else "missed" if result.checks else "not judged (no V landed in that range)"
    console.print(
        f"target: at every V with c in {replay.TARGET_COST_RANGE}, gain >= "
        f"{replay.TARGET_SHARE_OF_ORACLE_GAIN:.0%} of the oracle's: {verdict}"
    )
    if args.out:
        console.print(f"wrote {replay.plot(result, Path(args.out))}")
    return 0 if result.met else 1


def _cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from worker.routing.signing import generate

    private, public = generate()
    console.print_json(json.dumps({"ROUTING_SIGNING_KEY": private, "public_key": public}))
    err.print(
        "keep ROUTING_SIGNING_KEY secret (the workers' environment only); give routers public_key: "
        "RoutingTable(public_keys=[...]) in Python, new RoutingTable({ publicKeys: [...] }) in TypeScript"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="telemetry-worker", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the worker (Kafka -> PostgreSQL) until stopped").set_defaults(func=_run)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_cmd_migrate)
    r = sub.add_parser("report", help="print the analyze_metrics report")
    r.add_argument("--task-type", help="only this task type")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.add_argument(
        "--candidate-weights",
        type=candidate_weights,
        metavar="NAME=VALUE,...",
        help="also estimate each learned rule's alternative under these scoring weights (latency, cost, "
        "latency_ref_ms, cost_ref_usd, value_usd), learned before its publication and estimated after it",
    )
    r.set_defaults(func=_cmd_report)
    rt = sub.add_parser(
        "record-test-results", help="send a CI run's regression stub results (JUnit XML); exit 1 on a regression"
    )
    rt.add_argument("--junit", required=True, metavar="FILE", help="the JUnit XML that pytest or Vitest wrote")
    rt.add_argument("--commit", required=True, help="the gateway commit the stubs ran against")
    rt.add_argument("--environment", default="ci", help="where they ran (default: ci)")
    rt.add_argument("--run-id", help="idempotency key, e.g. the CI run id and attempt (default: a hash of the report)")
    rt.set_defaults(func=_cmd_record_test_results)
    sub.add_parser("mcp", help="serve the tools over MCP on stdin/stdout").set_defaults(func=_cmd_mcp)
    sub.add_parser(
        "otlp", help="receive OpenTelemetry GenAI spans (OTLP/HTTP on OTLP_PORT) and produce them as call events"
    ).set_defaults(func=_cmd_otlp)
    s = sub.add_parser("simulate", help="produce simulated gateway traffic")
    s.add_argument("--count", type=int, default=20_000, help="call events to produce (default 20000)")
    s.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    s.add_argument("--envelope", type=int, default=1, help="events per message; >1 sends batch envelopes")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--resend-fraction", type=float, default=0.0, help="share of events sent twice")
    s.add_argument(
        "--feedback-fraction",
        type=float,
        default=0.0,
        help="share of answered calls that get correctness feedback (some replaced, some sent before the call)",
    )
    s.add_argument("--invalid-fraction", type=float, default=0.0, help="share of extra invalid inputs")
    s.add_argument("--degrade-model", help="model that degrades during the run")
    s.add_argument("--degrade-after", type=int, default=0, help="event number from which it degrades")
    s.add_argument("--partitions", type=int, default=4, help="partitions of topics created by the simulator")
    s.add_argument("--ledger", help="write what was produced, as JSON, to this file")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_simulate)
    st = sub.add_parser("status", help="consumer lag per partition, last flush, routing heuristic versions")
    st.add_argument("--wait", type=float, metavar="SECONDS", help="first wait until the lag is zero")
    st.set_defaults(func=_cmd_status)
    x = sub.add_parser("export-tests", help="write regression stubs as test files")
    x.add_argument("--framework", choices=("vitest", "pytest"), default="vitest")
    x.add_argument("--out", required=True, help="folder to write into")
    x.add_argument("--category", help="only stubs of this category")
    x.set_defaults(func=_cmd_export_tests)
    rules = sub.add_parser("rules", help="routing rules: list, add a manual rule, (de)activate one")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    listing = rules_sub.add_parser("list", help="the current rules, highest priority first")
    listing.add_argument("--all", action="store_true", help="include inactive rules")
    add = rules_sub.add_parser("add", help="add a manual rule (an RE2 pattern matched against the request)")
    add.add_argument("--pattern", required=True)
    add.add_argument("--layer", required=True, choices=("fast", "balanced", "deep"))
    add.add_argument("--model", help="preferred model (optional)")
    add.add_argument("--priority", type=int, default=100, help="higher wins; learned rules have 0 (default 100)")
    add.add_argument("--reasoning", default="manual rule")
    active = rules_sub.add_parser("set-active", help="turn a manual rule on or off")
    active.add_argument("id", type=int)
    active.add_argument("active", choices=("true", "false"))
    rules.set_defaults(func=_cmd_rules)
    models = sub.add_parser("models", help="the model catalogue: declare models the gateway can route to")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="the declared models (models seen in events are in the catalogue too)")
    declare = models_sub.add_parser("declare", help="declare a model, so it is explored before it has data")
    declare.add_argument("--model", required=True)
    declare.add_argument("--layer", required=True, choices=("fast", "balanced", "deep"))
    declare.add_argument("--task-type", action="append", help="a task type it serves (repeatable); default: all")
    declare.add_argument("--provider")
    remove = models_sub.add_parser("remove", help="take a declared model out of the catalogue")
    remove.add_argument("--model", required=True)
    models.set_defaults(func=_cmd_models)
    offsets = sub.add_parser("offsets", help="the stored consumer offsets: re-anchor after a topic was recreated")
    offsets_sub = offsets.add_subparsers(dest="offsets_command", required=True)
    anchor = offsets_sub.add_parser(
        "reanchor",
        help="set a topic's stored offsets to the log's first (or last) "
        "offset: after the topic was deleted and recreated, or its offsets reset",
    )
    anchor.add_argument("--topic", required=True)
    anchor.add_argument("--partition", type=int, default=None, help="one partition (default: all of them)")
    anchor.add_argument(
        "--to",
        choices=("earliest", "latest"),
        default="earliest",
        help="earliest: count everything the new log holds (default); latest: skip it",
    )
    anchor.add_argument(
        "--rewind",
        action="store_true",
        help="allow reading again events already counted (a stored offset inside the log); "
        "those older than DEDUPE_WINDOW_S are counted twice",
    )
    offsets.set_defaults(func=_cmd_offsets)
    ev = sub.add_parser("routing-eval", help="closed-loop routing evaluation on a simulated clock (no services)")
    ev.add_argument("--scenario", action="append", help="only this scenario (repeatable); default: all")
    ev.add_argument("--seeds", type=int, default=1, help="runs per scenario with seeds 1..N; medians are printed")
    ev.add_argument("--out", default=".cache/routing-eval", help="folder for the PNG plots ('' for none)")
    ev.add_argument("--no-comparisons", action="store_true", help="only the learned router")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_cmd_routing_eval)
    rp = sub.add_parser(
        "routing-replay", help="replay real per-prompt outcomes through the closed loop: the cost-quality curve"
    )
    rp.add_argument("--data", required=True, help="CSV: task_type, prompt, one 0/1 column per model (two models)")
    rp.add_argument("--values", help="comma-separated values of a good answer V in USD (default: a sweep)")
    rp.add_argument("--seeds", type=int, default=3, help="passes per V, with seeds 1..N; medians are printed")
    rp.add_argument("--rate", type=float, default=4.0, help="prompts per second (default 4)")
    rp.add_argument("--feedback-share", type=float, default=0.3, help="share of calls with feedback (default 0.3)")
    rp.add_argument("--out", default=".cache/routing-replay", help="folder for the PNG ('' for none)")
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.set_defaults(func=_cmd_routing_replay)
    exp = sub.add_parser("experiment", help="experiments on routing strategies: create, list, show, stop, promote")
    exp_sub = exp.add_subparsers(dest="experiment_command", required=True)
    create = exp_sub.add_parser("create", help="start an experiment from a JSON definition (create_experiment's body)")
    create.add_argument("file", help="the definition's file, or - for stdin")
    exp_list = exp_sub.add_parser("list", help="experiments, newest first")
    exp_list.add_argument("--status", choices=["running", "completed", "stopped", "promoted"])
    for verb, text in (
        ("show", "an experiment with its estimates and always-valid intervals"),
        ("stop", "stop a running experiment (nothing is promoted)"),
        ("promote", "make an arm's strategy the routing (default: the winner)"),
    ):
        one = exp_sub.add_parser(verb, help=text)
        one.add_argument("experiment_id")
        if verb == "stop":
            one.add_argument("--reason", default="")
        if verb == "promote":
            one.add_argument("--arm", help="the arm to promote (default: the experiment's winner)")
            one.add_argument(
                "--force", metavar="REASON", help="promote an arm that is not the winner or was stopped, saying why"
            )
    exp.set_defaults(func=_cmd_experiment)
    xe = sub.add_parser("experiment-eval", help="experiments in the closed loop on a simulated clock (no services)")
    xe.add_argument("--scenario", help="one scenario (default: all)")
    xe.add_argument("--seeds", type=int, default=20)
    xe.add_argument("--out", help="folder for one PNG per scenario (its first seed)")
    xe.set_defaults(func=_cmd_experiment_eval)
    keys = sub.add_parser("keys", help="signing keys of the routing records")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="print a new Ed25519 pair: ROUTING_SIGNING_KEY and the routers' public key")
    keys.set_defaults(func=_cmd_keys)
    c = sub.add_parser("schemas", help="write the wire contract's JSON Schema files")
    c.add_argument("--out", default="schemas")
    c.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    c.set_defaults(func=_cmd_schemas)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    logs.configure(settings.log_level)
    try:
        return args.func(args, settings)
    except KeyboardInterrupt:
        return 130
    except OSError as error:
        err.print(f"[red]error:[/red] {error}. Are the services up? Try 'make services-up'.")
        return 2
    except Exception as error:
        import asyncpg

        if isinstance(error, asyncpg.UndefinedTableError):
            err.print(
                f"[red]error:[/red] {error}: the database has no schema yet; run 'telemetry-worker migrate' "
                "(the worker also migrates when it starts)"
            )
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

"""The stage's Grafana dashboard, built in Python with grafana-foundation-sdk: run this file to rewrite
dashboards/producer.json (stage 7's compose stack provisions it; `make panels` draws it from Prometheus).

One row per question of design/bottlenecks.md: is it the traffic, the database, Kafka, the consumer, the
cache, or the machine? One unit per panel. Rates use Grafana's $__rate_interval, so that a drill of a
minute shows; the alerts (../prometheus/) use 5-minute windows.
"""
from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "producer.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")  # the uid stage 7's provisioning gives it
UNPROBED = 'route!~"/metrics|/healthz|/readyz"'
HEIGHT = 8
# Grafana's rate window: four scrape intervals at least, so a panel follows a one-minute drill as closely
# as the scrapes allow (make panels puts a window in its place, as Grafana does).
RATE = "$__rate_interval"


def p99(histogram: str, by: str = "", match: str = "") -> str:
    keep = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.99, sum by ({keep}) (rate({histogram}_bucket{{{match}}}[{RATE}])))"


# (row title, [(panel title, unit, description, [(legend, expr), ...]), ...]): one unit per panel.
ROWS = [
    ("Traffic: rate, errors, duration (RED)", [
        ("Requests per second by route", "reqps", "Every answered request, by route template and method.", [
            ("{{method}} {{route}}", f"sum by (route, method) (rate(http_server_request_duration_seconds_count{{{UNPROBED}}}[{RATE}]))")]),
        ("5xx ratio", "percentunit", "Share of answers that are 5xx (probes and /metrics excluded); slo.yaml allows 0.001.", [
            # "or vector(0)": no 5xx series exists until the first 5xx, and an absent numerator is no ratio at all.
            ("5xx / all", f'(sum(rate(http_server_request_duration_seconds_count{{status=~"5..", {UNPROBED}}}[{RATE}])) '
                          f"or vector(0)) / sum(rate(http_server_request_duration_seconds_count{{{UNPROBED}}}[{RATE}]))")]),
        ("p99 latency by route", "s", "99th percentile of request duration; slo.yaml's p99 is 0.1 s for a create, 0.05 s for a read.", [
            ("{{method}} {{route}}", p99("http_server_request_duration_seconds", "route, method", UNPROBED))]),
        ("Creates: accepted, replayed, refused", "ops", "The business side of POST /api/v1/tasks.", [
            ("accepted", f"sum(rate(tasks_accepted_total[{RATE}]))"),
            ("replayed", f"sum(rate(idempotency_replays_total[{RATE}]))"),
            # Only the reasons that happen: eight lines at 0 would bury the two that matter.
            ("refused {{reason}}", f"sum by (reason) (rate(tasks_rejected_total[{RATE}])) > 0")]),
    ]),
    ("Database: is it slow?", [
        ("Statement p99 by kind", "s", "99th percentile of a statement's round trip, from the producer's workers.", [
            ("{{operation}}", p99("db_query_duration_seconds", "operation"))]),
        ("Connection pool in use", "percentunit", "Connections lent / what the pools may lend, all workers.", [
            ("in use", "sum(db_pool_checked_out_connections) / sum(db_pool_max_connections)")]),
        ("Pool timeouts", "ops", "Checkouts that waited the pool's timeout in vain: each one is a failed request.", [
            ("timeouts/s", f"sum(rate(db_pool_timeouts_total[{RATE}]))")]),
        ("Consumer batch p99", "s", "A batch: decode, one transaction, dead letters. A slow database shows here too.", [
            ("batch p99", p99("consumer_batch_duration_seconds"))]),
    ]),
    ("Kafka: is it stuck?", [
        ("Publish p99", "s", "From produce() to the broker's acknowledgement: most of a create's time.", [
            ("acked", p99("broker_publish_duration_seconds", match='outcome="acked"'))]),
        ("Publish errors", "ops", "Publish attempts without an acknowledgement, by reason.", [
            ("{{reason}}", f"sum by (reason) (rate(broker_publish_errors_total[{RATE}]))")]),
        ("Broker readiness", "short", "1 if every worker's last /readyz reached the broker, else 0.", [
            ("broker ready", 'min(readiness_status{dependency="broker"})')]),
        ("Producer queue", "short", "Messages in the workers' local queues, not yet acknowledged.", [
            ("queued", "sum(kafka_producer_queue_messages)")]),
    ]),
    ("Consumer: is it keeping up?", [
        ("Consumer lag per partition", "short", "Messages on each partition the consumer has not reached.", [
            ("partition {{partition}}", "sum by (partition) (kafka_consumer_lag_messages)")]),
        ("Landing delay p99", "s", "From the broker's append to the row's commit; slo.yaml's p99 is 5 s.", [
            ("p99", p99("task_landing_delay_seconds"))]),
        ("Messages handled", "ops", "Landed and dead-lettered, per second.", [
            ("{{outcome}}", f"sum by (outcome) (rate(consumer_messages_total[{RATE}]))")]),
        ("DLQ records", "short", "Letters and handled markers in the dead-letter topic.", [
            ("records", "sum(dlq_records)")]),
    ]),
    ("Cache: is it being penetrated?", [
        ("Hit ratio per level", "percentunit", "(hits + negative hits) / lookups, per level. Penetration drags both down.", [
            ("{{level}}", f'sum by (level) (rate(cache_lookups_total{{result=~"hit|negative_hit"}}[{RATE}])) '
                          f"/ sum by (level) (rate(cache_lookups_total[{RATE}]))")]),
        ("Lookups by result", "ops", "Reads of unknown ids show as Redis misses, then negative hits.", [
            ("{{level}} {{result}}", f"sum by (level, result) (rate(cache_lookups_total[{RATE}]))")]),
        ("Statements per second", "ops", "What reaches the database: a penetrated cache sends the reads here.", [
            ("{{operation}}", f"sum by (operation) (rate(db_query_duration_seconds_count[{RATE}]))")]),
        ("Redis errors", "ops", "Failed Redis calls by kind; a request skips Redis after its first failure.", [
            ("{{kind}}", f"sum by (kind) (rate(redis_errors_total[{RATE}]))")]),
    ]),
    ("Resources", [
        ("CPU by process", "percentunit", "Cores used: the producer's workers together, and the consumer.", [
            ("{{job}}", f"sum by (job) (rate(process_cpu_seconds_total[{RATE}]))")]),
        ("Resident memory", "bytes", "Each live producer worker, and the consumer.", [
            ("{{job}} {{pid}}", "process_resident_memory_bytes")]),
    ]),
]


def build() -> dashboard.Dashboard:
    board = (dashboard.Dashboard("Task producer: which part is the bottleneck?").uid("task-producer")
             .tags(["stage5", "producer"]).refresh("10s").time("now-15m", "now").timezone("utc"))
    y = 0
    for row_title, panels in ROWS:
        board = board.with_row(dashboard.Row(row_title).grid_pos(GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        width = 24 // len(panels)  # Grafana's grid is 24 columns wide
        for index, (title, unit, description, queries) in enumerate(panels):
            panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
                     .grid_pos(GridPos(h=HEIGHT, w=width, x=index * width, y=y)).fill_opacity(10).line_width(1))
            for ref, (legend, expr) in zip("ABCDEFGH", queries):
                panel = panel.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
                                          .datasource(DATASOURCE))
            board = board.with_panel(panel)
        y += HEIGHT
    return board


def render() -> str:
    """The dashboard as Grafana's JSON model, keys sorted, so that a change shows as a small diff."""
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")

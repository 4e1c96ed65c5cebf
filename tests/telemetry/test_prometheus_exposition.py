"""`GET /metrics` from the pull-based reader: the text parses with prometheus_client's reference parser,
names and units follow the OTel→Prometheus rules, histogram buckets are cumulative on the instrument's
own boundaries, labels are escaped, and counters stay cumulative across scrapes."""

from __future__ import annotations

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.testclient import TestClient

from fleetplane.telemetry.prometheus import CONTENT_TYPE, PrometheusReader, metric_name, prometheus_route

TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
SCOPE = {"otel_scope_name": "fleetplane", "otel_scope_version": "0.1.0"}


def scrape(client: TestClient) -> dict[str, tuple[str, list[Sample]]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(response.text)}


def test_every_instrument_kind_parses_with_the_reference_parser() -> None:
    reader = PrometheusReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource({"service.name": "gateway"}))
    m = provider.get_meter("fleetplane", "0.1.0")
    tokens = m.create_histogram(
        "gen_ai.client.token.usage",
        unit="{token}",
        description="Input and output tokens used.",
        explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
    )
    duration = m.create_histogram(
        "gen_ai.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
    )
    cost = m.create_counter("fleetplane.cost.usd", unit="USD", description='Dollars "spent"\nby calls.')
    active = m.create_up_down_counter("fleetplane.requests.active", unit="{request}")
    queue = m.create_gauge("fleetplane.queue.depth")

    def utilization(_: CallbackOptions) -> list[Observation]:
        return [Observation(0.75, {"gen_ai.request.model": "gpt-4o"})]

    m.create_observable_gauge("fleetplane.context.utilization", callbacks=[utilization], unit="1")
    for value in (3, 3, 100, 70_000_000):
        tokens.record(value, {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o"})
    duration.record(0.05, {"error.type": 'quote " back \\ new\nline'})
    cost.add(0.25, {"fleetplane.team": "support"})
    cost.add(0.5, {"fleetplane.team": "support"})
    active.add(3)
    active.add(-1)
    queue.set(7)
    client = TestClient(Starlette(routes=[prometheus_route(reader)]))

    families = scrape(client)

    assert {name: kind for name, (kind, _) in families.items()} == {
        "target_info": "gauge",
        "gen_ai_client_token_usage": "histogram",
        "gen_ai_client_operation_duration_seconds": "histogram",
        "fleetplane_cost_usd": "counter",
        "fleetplane_requests_active": "gauge",
        "fleetplane_queue_depth": "gauge",
        "fleetplane_context_utilization_ratio": "gauge",
    }
    labels = {"gen_ai_token_type": "input", "gen_ai_request_model": "gpt-4o", **SCOPE}
    buckets = [s for s in families["gen_ai_client_token_usage"][1] if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets] == [str(float(b)) for b in TOKEN_BUCKETS] + ["+Inf"]
    assert [float(s.labels["le"]) for s in buckets[:-1]] == [float(b) for b in TOKEN_BUCKETS]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert counts == [0, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4]
    assert all({k: v for k, v in s.labels.items() if k != "le"} == labels for s in buckets)
    rest = {
        s.name: s.value for s in families["gen_ai_client_token_usage"][1] if not s.name.endswith("_bucket")
    }
    assert rest == {"gen_ai_client_token_usage_count": 4, "gen_ai_client_token_usage_sum": 70_000_106}
    (escaped,) = [
        s for s in families["gen_ai_client_operation_duration_seconds"][1] if s.labels.get("le") == "0.08"
    ]
    assert escaped.labels["error_type"] == 'quote " back \\ new\nline'
    assert escaped.value == 1
    assert families["fleetplane_cost_usd"][1] == [
        Sample("fleetplane_cost_usd_total", {"fleetplane_team": "support", **SCOPE}, 0.75)
    ]
    assert [s.value for s in families["fleetplane_requests_active"][1]] == [2]
    assert [s.value for s in families["fleetplane_queue_depth"][1]] == [7]
    assert families["fleetplane_context_utilization_ratio"][1] == [
        Sample("fleetplane_context_utilization_ratio", {"gen_ai_request_model": "gpt-4o", **SCOPE}, 0.75)
    ]
    (target,) = families["target_info"][1]
    assert target.labels["service_name"] == "gateway" and target.value == 1

    cost.add(1.0, {"fleetplane.team": "support"})
    assert scrape(client)["fleetplane_cost_usd"][1][0].value == 1.75  # cumulative across scrapes
    provider.shutdown()


def test_the_text_escapes_help_and_labels_exactly() -> None:
    reader = PrometheusReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource({}))
    counter = provider.get_meter("s").create_counter("calls", description="a \\ b\nc")
    counter.add(2, {"1st.key": 'x"y', "a.b": "one", "a_b": "two"})

    text = reader.scrape()

    assert text == (
        "# HELP calls_total a \\\\ b\\nc\n"
        "# TYPE calls_total counter\n"
        'calls_total{key_1st_key="x\\"y",a_b="one;two",otel_scope_name="s",otel_scope_version=""} 2\n'
    )
    provider.shutdown()


def test_a_reader_on_no_provider_scrapes_empty() -> None:
    assert PrometheusReader().scrape() == ""


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("gen_ai.client.token.usage", "{token}", "histogram", "gen_ai_client_token_usage"),
        ("gen_ai.client.operation.duration", "s", "histogram", "gen_ai_client_operation_duration_seconds"),
        ("http.server.request.duration", "ms", "histogram", "http_server_request_duration_milliseconds"),
        ("system.memory.usage", "By", "gauge", "system_memory_usage_bytes"),
        ("system.memory.utilization", "1", "gauge", "system_memory_utilization_ratio"),
        ("fleetplane.finish_reason.length", "{call}", "counter", "fleetplane_finish_reason_length_total"),
        ("fleetplane.cost.usd", "USD", "counter", "fleetplane_cost_usd_total"),
        ("net.throughput", "By/s", "gauge", "net_throughput_bytes_per_second"),
        ("requests_total", "", "counter", "requests_total"),
        ("2xx..responses", "", "gauge", "_2xx_responses"),
        ("queue.wait_seconds", "s", "histogram", "queue_wait_seconds"),
    ],
)
def test_names_follow_the_compatibility_rules(name: str, unit: str, kind: str, expected: str) -> None:
    assert metric_name(name, unit, kind) == expected

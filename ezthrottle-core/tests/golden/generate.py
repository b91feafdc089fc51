"""Regenerates the golden job JSON from the official Python SDK 1.3.0.

Each case builds a workflow with the Python `Step` builder, executes it against a
patched `requests.post` that captures the proxy envelope, and writes the inner job
(`json.loads(envelope["body"])`) to `<case>.json`. The Rust tests build the same
workflows with `ezthrottle_core::Step` and compare.

    python3 -m venv /tmp/py && /tmp/py/bin/pip install ezthrottle==1.3.0
    /tmp/py/bin/python ezthrottle-core/tests/golden/generate.py
"""

import json
import pathlib
from unittest import mock

import ezthrottle
from ezthrottle import EZThrottle, IdempotentStrategy, Step, StepType

HERE = pathlib.Path(__file__).parent
assert ezthrottle.client.__file__, "ezthrottle not importable"


def capture(step):
    """Runs `step.execute` and returns the job JSON the SDK sent."""
    sent = {}

    def fake_post(url, json=None, headers=None, timeout=None):
        sent["envelope"] = json
        answer = mock.Mock()
        answer.status_code = 200
        answer.json.return_value = {
            "status": "allowed",
            "forwarded_response": {"status_code": 201, "body": '{"job_id":"job_1","status":"queued"}'},
        }
        return answer

    with mock.patch("requests.post", fake_post):
        step.execute(EZThrottle(api_key="ck_test"))
    return __import__("json").loads(sent["envelope"]["body"])



CASES = {
    "minimal": lambda: Step().url("https://api.example.com/items"),
    "request_fields": lambda: (
        Step()
        .url("https://api.example.com/charge")
        .method("post")
        .headers({"Authorization": "Bearer t0k", "Content-Type": "application/json"})
        .body('{"amount":100}')
        .metadata({"order": "o-1", "attempt": "2"})
    ),
    "webhooks_quorum": lambda: (
        Step()
        .url("https://api.example.com/items")
        .webhooks([
            {"url": "https://a.example.com/hook", "has_quorum_vote": True},
            {"url": "https://b.example.com/hook", "regions": ["iad", "lax"], "has_quorum_vote": True},
            {"url": "https://audit.example.com/hook", "has_quorum_vote": False},
        ])
        .webhook_quorum(2)
    ),
    "regions_strict_fanout": lambda: (
        Step()
        .url("https://api.example.com/items")
        .regions(["iad", "lax", "ord"])
        .region_policy("strict")
        .execution_mode("fanout")
    ),
    "regions_defaults_omitted": lambda: (
        Step()
        .url("https://api.example.com/items")
        .regions(["iad", "lax"])
        .region_policy("fallback")
        .execution_mode("race")
        .webhook_quorum(1)
    ),
    "retry_policy_and_retry_at": lambda: (
        Step()
        .url("https://api.example.com/items")
        .retry_policy({"max_retries": 5, "max_reroutes": 3, "retry_codes": [429, 503], "reroute_codes": [500, 502, 504]})
        .retry_at(1763674210055)
    ),
    "explicit_key": lambda: Step().url("https://api.example.com/items").idempotent_key("order-42"),
    "fallback_chain_with_children": lambda: (
        Step()
        .url("https://httpbin.org/status/500")
        .webhooks([{"url": "https://app/webhook", "has_quorum_vote": True}])
        .idempotent_key("k1")
        .fallback(Step().url("https://httpbin.org/delay/2"), trigger_on_error=[500, 502, 503])
        .fallback(Step().url("https://httpbin.org/status/200"), trigger_on_timeout=500)
        .on_success(Step().url("https://httpbin.org/delay/1").idempotent_key("k2"))
        .on_failure(
            Step().url("https://alerts.example.com/page").method("POST").body("failed").idempotent_key("k3"),
            timeout_ms=60000,
        )
    ),
    "fallback_without_condition": lambda: (
        Step().url("https://api.example.com/items").fallback(Step().url("https://backup.example.com/items"))
    ),
    "nested_workflow": lambda: (
        Step()
        .url("https://api.example.com/orders")
        .method("POST")
        .body('{"sku":"A"}')
        .idempotent_key("order")
        .on_success(
            Step()
            .url("https://api.example.com/invoice")
            .method("POST")
            .idempotent_key("invoice")
            .webhooks([{"url": "https://app.example.com/invoice-hook", "has_quorum_vote": True}])
            .on_success(Step().url("https://api.example.com/email").idempotent_key("email"))
            .on_failure(Step().url("https://api.example.com/refund").idempotent_key("refund"))
        )
        .fallback(
            Step().url("https://backup.example.com/orders").method("POST").body('{"sku":"A"}').idempotent_key("backup"),
            trigger_on_error=[502],
        )
    ),
}


def main():
    for name, build in CASES.items():
        job = capture(build())
        (HERE / f"{name}.json").write_text(json.dumps(job, indent=2, sort_keys=True) + "\n")
        print("wrote", name)

    # UNIQUE draws a fresh UUID per execution: record two runs to show they differ.
    unique = lambda: Step().url("https://api.example.com/poll").idempotent_strategy(IdempotentStrategy.UNIQUE)
    first, second = capture(unique()), capture(unique())
    assert first["idempotent_key"] != second["idempotent_key"]
    print("unique keys differ:", first["idempotent_key"], second["idempotent_key"])


if __name__ == "__main__":
    main()

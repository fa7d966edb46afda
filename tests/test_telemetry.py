"""JSON logs and EMF lines: where they go and what they hold."""

import io
import json
import logging
import sys

from handlers.shared import telemetry


def test_logs_follow_stdout_when_it_is_replaced(monkeypatch):
    telemetry.configure_logging()
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    logging.getLogger("test").warning("one", extra={"tenant": "acme"})
    monkeypatch.setattr(sys, "stdout", second)
    logging.getLogger("test").warning("two")

    assert json.loads(first.getvalue())["message"] == "one"
    assert json.loads(first.getvalue())["tenant"] == "acme"
    assert json.loads(second.getvalue())["message"] == "two"


def test_a_command_logs_to_stderr_quietly_unless_asked(monkeypatch):
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    telemetry.configure_logging()  # a Lambda handler imported earlier in the process
    telemetry.configure_logging(stream="stderr", default_level="WARNING")
    logging.getLogger("test").info("routine")
    logging.getLogger("test").warning("attention")

    assert out.getvalue() == ""
    assert [json.loads(line)["message"] for line in err.getvalue().splitlines()] == ["attention"]
    assert (
        len(
            [
                h
                for h in logging.getLogger().handlers
                if h.formatter.__class__.__name__ == "JsonFormatter"
            ]
        )
        == 1
    )
    telemetry.configure_logging()  # back to the Lambda default for other tests


def test_emf_documents_name_the_metric_namespace_and_environment(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("METRICS_NAMESPACE", raising=False)
    document = telemetry.emf_document(telemetry.REPORT_FAILURES, 1, timestamp_ms=1_700_000_000_000)
    assert document == {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "SecureBase/Analytics",
                    "Dimensions": [["Environment"]],
                    "Metrics": [{"Name": "ReportGenerationFailures", "Unit": "Count"}],
                }
            ],
        },
        "Environment": "production",
        "ReportGenerationFailures": 1,
    }

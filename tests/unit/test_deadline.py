"""The deadline every AWS call is bounded by (core.Deadline and the botocore hooks in clients)."""

from __future__ import annotations

import threading

import pytest
from botocore.awsrequest import AWSPreparedRequest, HTTPHeaders

from data_aggregator.clients import DeadlineReachedError, _bound_request, _retry_within_deadline, deadline_budget
from data_aggregator.core import Deadline, bound_by, current_deadline


def test_the_working_budget_keeps_the_reserve_back_and_finishing_may_use_it() -> None:
    deadline = Deadline(lambda: 20.0, reserve_seconds=5.0, margin_seconds=1.0)
    assert deadline.budget() == 14.0
    with deadline.finishing():
        assert deadline.budget() == 19.0
    assert deadline.budget() == 14.0


def test_the_deadline_belongs_to_the_invocation_that_bound_it() -> None:
    """Two invocations side by side in one process (the sandbox's pollers) see their own deadlines."""
    seen: dict[str, float | None] = {}

    def other() -> None:
        seen["other"] = deadline_budget()

    with bound_by(Deadline(lambda: 10.0, reserve_seconds=0.0, margin_seconds=0.0)):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        seen["mine"] = deadline_budget()
    assert seen == {"other": None, "mine": 10.0}
    assert current_deadline() is None


def request() -> AWSPreparedRequest:
    prepared = AWSPreparedRequest("GET", "http://127.0.0.1:1/b/k", HTTPHeaders(), b"", stream_output=False)
    prepared.context = {}  # type: ignore[attr-defined]
    return prepared


def test_each_attempt_reads_for_no_longer_than_the_budget() -> None:
    outside = request()
    _bound_request(outside)
    assert "read_timeout" not in outside.context  # type: ignore[attr-defined]  # outside an invocation: the client's own
    with bound_by(Deadline(lambda: 7.5, reserve_seconds=2.0, margin_seconds=0.5)):
        inside = request()
        _bound_request(inside)
        assert inside.context["read_timeout"] == 5.0  # type: ignore[attr-defined]
    with bound_by(Deadline(lambda: 0.6, reserve_seconds=0.0, margin_seconds=0.5)), pytest.raises(DeadlineReachedError):
        _bound_request(request())


def test_no_retry_whose_backoff_could_pass_the_deadline() -> None:
    assert _retry_within_deadline(attempts=4) is None  # outside an invocation: the SDK decides
    with bound_by(Deadline(lambda: 5.0, reserve_seconds=0.0, margin_seconds=0.0)):
        assert _retry_within_deadline(attempts=1) is None  # up to 1 s of sleep fits
        assert _retry_within_deadline(attempts=3) is None  # up to 4 s fits
        assert _retry_within_deadline(attempts=4) is False  # up to 8 s does not

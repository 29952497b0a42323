import logging

from core.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, describe_url


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_failure_opens_the_breaker_until_one_probe_closes_it():
    clock = Clock()
    breaker = CircuitBreaker("redis", reset_after_s=5, clock=clock)
    assert breaker.allow() and breaker.state == CLOSED
    breaker.record_failure(ConnectionError("refused"))
    assert breaker.state == OPEN
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow() and breaker.state == HALF_OPEN  # the probe
    assert not breaker.allow()  # the others still go without while it runs
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow()


def test_a_failed_probe_opens_it_for_another_period():
    clock = Clock()
    breaker = CircuitBreaker("redis", reset_after_s=5, clock=clock)
    breaker.record_failure(TimeoutError())
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure(TimeoutError())
    assert breaker.state == OPEN
    clock.now += 4.9
    assert not breaker.allow()


def test_a_probe_that_never_reports_is_replaced_after_a_period():
    clock = Clock()
    breaker = CircuitBreaker("redis", reset_after_s=5, clock=clock)
    breaker.record_failure(TimeoutError())
    clock.now += 5
    assert breaker.allow()  # this probe's thread dies without a word
    clock.now += 5
    assert breaker.allow()


def test_an_outage_logs_one_line_without_traceback_and_counts_what_went_without(caplog):
    clock = Clock()
    breaker = CircuitBreaker("cache at redis://h:1/0", reset_after_s=5, clock=clock)
    with caplog.at_level(logging.INFO, logger="core.breaker"):
        breaker.record_failure(ConnectionError("refused"))
        breaker.record_failure(ConnectionError("refused"))  # a concurrent caller: already open
        for _ in range(7):
            assert not breaker.allow()
        clock.now += 6
        assert breaker.allow()
        breaker.record_success()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert "cache at redis://h:1/0 is unavailable (ConnectionError: refused)" in warnings[0].getMessage()
    back = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(back) == 1 and back[0].refused_calls == 7


def test_urls_lose_their_credentials():
    assert describe_url("redis://:s3cret@cache.internal:6380/2") == "redis://cache.internal:6380/2"
    assert describe_url("rediss://user:pw@h/0") == "rediss://h/0"

"""Sign-in tells nobody which users exist and cannot be hammered: one message for every failure, and
failures throttled per user name and per client (issue 20, defect 7). A fake clock drives the window."""

from __future__ import annotations

import pytest

from dashboard.auth import (
    SIGN_IN_FAILED,
    Account,
    LoginThrottle,
    SignInFailedError,
    ThrottledError,
    User,
    hash_password,
    sign_in,
)

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def accounts() -> dict[str, Account]:
    return {
        "erin": Account("erin", "decider", hash_password(PASSWORD).encode()),
        "proxy-only": Account("proxy-only", "viewer", None),
    }


def test_every_failure_reads_the_same(accounts: dict[str, Account]) -> None:
    throttle = LoginThrottle(clock=Clock())
    messages = set()
    for name, password in [("mallory", "x"), ("erin", "wrong"), ("proxy-only", "x"), ("erin", "x" * 100)]:
        with pytest.raises(SignInFailedError) as failed:
            sign_in(accounts, throttle, name, password, client=None)
        messages.add(str(failed.value))
    assert messages == {SIGN_IN_FAILED}


def test_a_name_is_refused_after_five_failures_even_with_the_right_password_until_the_window_passes(
    accounts: dict[str, Account],
) -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, window_s=300.0, clock=clock)
    for _ in range(5):
        clock.now += 1.0
        with pytest.raises(SignInFailedError):
            sign_in(accounts, throttle, "erin", "guess", client=None)
    with pytest.raises(ThrottledError, match=r"Try again in 296 s"):
        sign_in(accounts, throttle, "Erin ", PASSWORD, client=None)  # same name, other spelling
    clock.now += 296.0  # the first failure leaves the window
    assert sign_in(accounts, throttle, "erin", PASSWORD, client=None) == User("erin", "decider")
    # Success clears the name: five more tries are allowed again.
    for _ in range(5):
        with pytest.raises(SignInFailedError):
            sign_in(accounts, throttle, "erin", "guess", client=None)


def test_a_client_spraying_many_names_is_throttled_but_other_clients_are_not(
    accounts: dict[str, Account],
) -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, window_s=300.0, clock=clock)
    for i in range(5):
        with pytest.raises(SignInFailedError):
            sign_in(accounts, throttle, f"user{i}", "guess", client="203.0.113.9")
    with pytest.raises(ThrottledError):
        sign_in(accounts, throttle, "erin", PASSWORD, client="203.0.113.9")
    assert sign_in(accounts, throttle, "erin", PASSWORD, client="198.51.100.4") == User("erin", "decider")


def test_memory_stays_bounded_under_a_flood_of_names(accounts: dict[str, Account]) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, max_keys=50)
    for i in range(200):
        clock.now += 0.01
        throttle.failed([f"user:flood{i}"])
    assert len(throttle._failures) <= 50  # noqa: SLF001 - the bound is the behaviour under test

"""The stages' log set-up: what reaches stderr from third-party loggers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shadowlab.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_kafka_pythons_slow_loop_step_warning_is_dropped_and_its_other_warnings_kept(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # A failing command promises one `error:` line on stderr; on a busy machine kafka-python 3.0 logged
    # this from its own I/O loop before it, in these words (kafka/net/selector.py).
    configure_logging("info", "text")
    selector = logging.getLogger("kafka.net.selector")
    selector.warning(
        "Task '<Task metadata>' ran for 0.312s (>0.100s threshold). It is blocking the event loop -- likely "
        "a tight sync loop inside a coroutine. Other pollers will time out."
    )
    selector.warning("Task %s left RUNNING after step; demoting to UNSCHEDULED", "<Task fetch>")
    logging.getLogger("kafka.conn").warning("Connection to broker 1 failed")
    configure_logging("info", "text")  # configured twice (as the dashboard does): still one filter
    selector.warning("Task <Task x> ran for 0.200s (>0.100s threshold). It is blocking the event loop")

    err = capsys.readouterr().err
    assert "ran for" not in err
    assert "left RUNNING after step" in err
    assert "Connection to broker 1 failed" in err
    assert len(logging.getLogger("kafka.net.selector").filters) == 1

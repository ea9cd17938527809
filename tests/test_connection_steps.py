"""The backend program drivers (semcache/_connections/steps.py): results go back into
the program, a mapped error is thrown in where the step was made (the program may
handle it), and an unhandled one reaches the caller; sync and async alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest

from semcache import BackendUnavailable
from semcache._connections.steps import adrive, drive

Step = Callable[[], Any]


@contextmanager
def _map(step: Step) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise BackendUnavailable(f"{step}: {exc}", backend="test") from exc


def _fail() -> None:
    raise ConnectionRefusedError("refused")


async def _afail() -> None:
    raise ConnectionRefusedError("refused")


async def _aecho(x: int) -> int:
    return x


def _program(echo: Callable[[int], Any], fail: Step, handle: bool) -> Generator[Step, Any, Any]:
    a = yield partial(echo, 2)
    b = yield partial(echo, a + 3)
    try:
        yield fail
    except BackendUnavailable as exc:
        if not handle:
            raise
        return (a, b, "handled", type(exc.__cause__).__name__)
    raise AssertionError("the failing step did not fail")


def test_sync_driver() -> None:
    assert drive(_program(lambda x: x, _fail, True), _map) == (
        2, 5, "handled", "ConnectionRefusedError")
    with pytest.raises(BackendUnavailable):
        drive(_program(lambda x: x, _fail, False), _map)


def test_async_driver() -> None:
    assert asyncio.run(adrive(_program(_aecho, _afail, True), _map)) == (
        2, 5, "handled", "ConnectionRefusedError")
    with pytest.raises(BackendUnavailable):
        asyncio.run(adrive(_program(_aecho, _afail, False), _map))


def test_unmapped_errors_are_not_swallowed() -> None:
    def boom() -> None:
        raise KeyError("not a backend error")

    with pytest.raises(KeyError):
        drive(_program(lambda x: x, boom, True), _map)

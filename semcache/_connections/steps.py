"""The two drivers (sync and async) of backend programs written once as generators.

A program yields *steps*: zero-argument callables bound to one client (a bound method,
or ``functools.partial`` of one with its arguments), so an IDE or mypy can follow each
step to the backend method it calls. ``drive`` calls each step; ``adrive`` awaits what
each step returns. Both run the step inside the backend's error mapping and throw a
mapped error back into the program, so a program can handle one where it made the
call (RedisVL: an index another process created first); one it does not handle
propagates to the caller as is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

from .._errors import SemcacheError

__all__ = ["adrive", "drive"]

S = TypeVar("S", bound=Callable[[], Any])
R = TypeVar("R")
#: the backend's error mapping for one step (it may read the step's name and arguments)
ErrorMap = Callable[[S], AbstractContextManager[None]]


def drive(steps: Generator[S, Any, R], errors: ErrorMap[S]) -> R:
    """Run a program with a sync client: each step is called."""
    result: Any = None
    error: SemcacheError | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            return cast(R, stop.value)  # the program's return value
        result, error = None, None
        try:
            with errors(step):
                result = step()
        except SemcacheError as exc:
            error = exc


async def adrive(steps: Generator[S, Any, R], errors: ErrorMap[S]) -> R:
    """Run a program with an async client: what each step returns is awaited."""
    result: Any = None
    error: SemcacheError | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            return cast(R, stop.value)  # the program's return value
        result, error = None, None
        try:
            with errors(step):
                pending: Awaitable[Any] = step()
                result = await pending
        except SemcacheError as exc:
            error = exc

"""Fixtures for the adapter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from callback_receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP callback receiver on a free port (see ``callback_receiver``)."""
    with running_receiver() as started:
        yield started

"""The whole suite's process: seal keys of its own, so publishers here and the workers it starts agree."""

from __future__ import annotations

import os

import pytest

from runherald.testing.worker import seal_env


def pytest_configure(config: pytest.Config) -> None:
    # Set, not defaulted: keys of the developer's shell would not match the workers' test key.
    os.environ.update(seal_env())

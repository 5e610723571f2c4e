"""Fixtures for the deployment tests: the chart installed by the real Helm engine into kmock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from deploytools import PROFILES, Installed, helm_install


@pytest.fixture(scope="session")
def install_chart(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(values: dict[str, Any]) -> dict[str, Any]:
        return helm_install(values, tmp_path_factory.mktemp("helm"))

    return run


_installed: dict[str, Installed] = {}


def installed(profile: str, install: Callable[[dict[str, Any]], dict[str, Any]]) -> Installed:
    if profile not in _installed:
        result = install(PROFILES[profile]())
        assert result["ok"], result.get("error")
        _installed[profile] = Installed(result)
    return _installed[profile]


@pytest.fixture(scope="session", params=sorted(PROFILES))
def release(request: pytest.FixtureRequest, install_chart: Callable[[dict[str, Any]], Any]) -> Installed:
    """The chart installed with each values profile (default, production, external servers, everything on)."""
    return installed(request.param, install_chart)


@pytest.fixture(scope="session")
def default_release(install_chart: Callable[[dict[str, Any]], Any]) -> Installed:
    return installed("default", install_chart)


@pytest.fixture(scope="session")
def production_release(install_chart: Callable[[dict[str, Any]], Any]) -> Installed:
    return installed("production", install_chart)


@pytest.fixture(scope="session")
def external_release(install_chart: Callable[[dict[str, Any]], Any]) -> Installed:
    return installed("external", install_chart)


@pytest.fixture(scope="session")
def full_release(install_chart: Callable[[dict[str, Any]], Any]) -> Installed:
    return installed("full", install_chart)

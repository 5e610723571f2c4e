"""Packages: ``app`` from ``app/`` and ``eda_operator`` from ``operator/`` (a package named ``operator``
would shadow the standard library). Everything else lives in pyproject.toml."""

from setuptools import find_packages, setup

app_packages = find_packages(include=["app", "app.*"])
operator_packages = ["eda_operator"] + [f"eda_operator.{p}" for p in find_packages(where="operator")]

setup(
    packages=app_packages + operator_packages,
    package_dir={"app": "app", "eda_operator": "operator"},
)

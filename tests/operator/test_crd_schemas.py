"""The CRD schemas (k8s/crds/) accept the examples and reject invalid objects (jsonschema on the
``openAPIV3Schema``: types, enums, minimums, required). Invalid specs a schema cannot express
(fromSequence > toSequence, a bad cron expression) are the operator's job: ``Failed/InvalidSpec``."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from emulator import EXAMPLES_DIR, crd_schema


def validate(obj: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(crd_schema(obj["kind"])).validate(obj)


def prb(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "eda.dev/v1alpha1",
        "kind": "ProjectionRebuild",
        "metadata": {"name": "r"},
        "spec": spec,
    }


def snap(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eda.dev/v1alpha1", "kind": "Snapshot", "metadata": {"name": "s"}, "spec": spec}


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Any) -> None:
    for obj in yaml.safe_load_all(path.read_text()):
        assert "namespace" not in obj["metadata"]
        validate(obj)


@pytest.mark.parametrize(
    "obj",
    [
        prb(projection="orders", fromSequence=5, toSequence=10, batchSize=1000),
        prb(projection="orders"),
        snap(aggregateType="order", ids=["1", "2"], retain=1),
        snap(aggregateType="order", schedule="0 * * * *", minEventsSinceSnapshot=10),
    ],
)
def test_valid_objects(obj: dict[str, Any]) -> None:
    validate(obj)


@pytest.mark.parametrize(
    "obj",
    [
        prb(),
        prb(projection="nope"),
        prb(projection="orders", batchSize=0),
        prb(projection="orders", batchSize=100_000),
        prb(projection="orders", fromSequence=0),
        prb(projection="orders", toSequence="ten"),
        {"apiVersion": "eda.dev/v1alpha1", "kind": "ProjectionRebuild", "metadata": {"name": "r"}},
        snap(),
        snap(aggregateType="unicorn"),
        snap(aggregateType="order", retain=0),
        snap(aggregateType="order", ids=[""]),
        snap(aggregateType="order", minEventsSinceSnapshot=0),
        snap(aggregateType="order", schedule=""),
    ],
)
def test_invalid_objects_are_rejected(obj: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(obj)


def test_status_fields_the_operator_writes_are_in_the_schema() -> None:
    for kind in ("ProjectionRebuild", "Snapshot"):
        status = crd_schema(kind)["properties"]["status"]
        assert status.get("x-kubernetes-preserve-unknown-fields") is True  # extra counters + kopf's own
        cond = status["properties"]["conditions"]["items"]["properties"]
        assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= set(
            cond
        )


def test_rebuild_spec_is_immutable_by_cel() -> None:
    spec = crd_schema("ProjectionRebuild")["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable"} in spec["x-kubernetes-validations"]

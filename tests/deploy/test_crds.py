"""The CRDs: one source of truth, valid examples, invalid objects rejected by the OpenAPI schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploytools import CHART, K8S, load_yaml

CRD_DIR = K8S / "crds"
CRD_FILES = sorted(CRD_DIR.glob("*.yaml"))


def crd(kind: str) -> dict[str, Any]:
    for path in CRD_FILES:
        doc = load_yaml(path)
        if doc["spec"]["names"]["kind"] == kind:
            return doc
    raise KeyError(kind)


def schema_of(kind: str) -> dict[str, Any]:
    (version,) = crd(kind)["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def validate(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, schema_of(obj["kind"]), cls=jsonschema.Draft7Validator)


def test_chart_crds_are_byte_identical_copies_of_k8s_crds() -> None:
    chart_files = sorted((CHART / "crds").glob("*.yaml"))
    assert [p.name for p in chart_files] == [p.name for p in CRD_FILES]
    assert len(CRD_FILES) == 3
    for source, copy_ in zip(CRD_FILES, chart_files, strict=True):
        assert source.read_bytes() == copy_.read_bytes(), copy_.name


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_crd_is_a_valid_customresourcedefinition(path: Path) -> None:
    doc = load_yaml(path)
    kubernetes_validate.validate(doc, "1.33.0", strict=True)
    assert doc["spec"]["group"] == "eda.dev"
    (version,) = doc["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert "eda" in doc["spec"]["names"]["categories"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    condition = status["properties"]["conditions"]["items"]["properties"]
    assert set(condition) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }


def _version(kind: str, plural: str, short: str, columns: list[str]) -> dict[str, Any]:
    """The CRD's one version, after checking its names and printer columns."""
    doc = crd(kind)
    assert (doc["spec"]["names"]["plural"], doc["spec"]["names"]["shortNames"]) == (plural, [short])
    (version,) = doc["spec"]["versions"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def test_projectionrebuild_crd_shape() -> None:
    columns = ["Projection", "Phase", "Progress", "Succeeded", "Age"]
    spec = _version("ProjectionRebuild", "projectionrebuilds", "prb", columns)
    assert spec["x-kubernetes-validations"] == [{"rule": "self == oldSelf", "message": "spec is immutable"}]
    assert spec["properties"]["batchSize"]["default"] == 5000


def test_snapshot_crd_shape() -> None:
    spec = _version("Snapshot", "snapshots", "snap", ["Type", "Schedule", "Written", "Last Run", "Age"])
    fields = spec["properties"]
    assert fields["aggregateType"]["enum"] == ["order", "inventory", "payment", "shipping", "saga"]
    assert fields["retain"]["default"] == 3


def test_backup_crd_shape() -> None:
    columns = ["Schedule", "Phase", "Events", "Bytes", "Kept", "Last Backup", "Age"]
    fields = _version("Backup", "backups", "bak", columns)["properties"]
    assert (fields["retain"]["default"], fields["verify"]["default"]) == (7, True)


@pytest.mark.parametrize("path", sorted((K8S / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate_against_their_crd(path: Path) -> None:
    obj = load_yaml(path)
    assert obj["apiVersion"] == "eda.dev/v1alpha1"
    assert "namespace" not in obj["metadata"]  # apply as is, into any namespace
    validate(obj)


PRB = {"apiVersion": "eda.dev/v1alpha1", "kind": "ProjectionRebuild", "metadata": {"name": "x"}}
SNAP = {"apiVersion": "eda.dev/v1alpha1", "kind": "Snapshot", "metadata": {"name": "x"}}
BAK = {"apiVersion": "eda.dev/v1alpha1", "kind": "Backup", "metadata": {"name": "x"}}


@pytest.mark.parametrize(
    "obj",
    [
        {**PRB, "spec": {}},
        {**PRB, "spec": {"projection": "orders", "batchSize": 0}},
        {**PRB, "spec": {"projection": "orders", "batchSize": 50001}},
        {**PRB, "spec": {"projection": "nope"}},
        {**PRB, "spec": {"projection": "orders", "fromSequence": 0}},
        {**PRB, "spec": {"projection": "orders", "toSequence": "10"}},
        {**PRB, "spec": {"projection": "orders"}, "status": {"phase": "Exploded"}},
        {**SNAP, "spec": {}},
        {**SNAP, "spec": {"aggregateType": "customer"}},
        {**SNAP, "spec": {"aggregateType": "order", "retain": 0}},
        {**SNAP, "spec": {"aggregateType": "order", "retain": 101}},
        {**SNAP, "spec": {"aggregateType": "order", "ids": "42"}},
        {**SNAP, "spec": {"aggregateType": "order", "minEventsSinceSnapshot": 0}},
        {**BAK, "spec": {"retain": 0}},
        {**BAK, "spec": {"directory": "../etc"}},
        {**BAK, "spec": {"directory": "a/b"}},
        {**BAK, "spec": {"schedule": ""}},
        {**BAK, "spec": {"maxMirrorLagSeconds": -1}},
        {**BAK, "spec": {"verify": "yes"}},
    ],
    ids=lambda o: f"{o['kind']}:{yaml.safe_dump(o.get('spec'), default_flow_style=True).strip()}",
)
def test_invalid_objects_are_rejected(obj: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(obj)


def test_status_keeps_room_for_kopf_bookkeeping() -> None:
    obj = copy.deepcopy({**PRB, "spec": {"projection": "orders"}})
    obj["status"] = {"phase": "Running", "percent": 40, "kopf": {"progress": {}}, "conditions": []}
    validate(obj)

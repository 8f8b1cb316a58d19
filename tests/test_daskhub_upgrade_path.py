"""The upgrade from the daskhub chart (2024.1.1) to the jupyterhub and dask-gateway charts keeps
every user's home and the hub's database.

tests/data/upgrade/daskhub-2024.1.1-release.json records what the last release on the daskhub
chart deployed for the default instance.yaml: its hub release resource, the hub values that
decide where homes and the database live, the EFS access points, and the Kubernetes volumes
(tokens read as "TOKEN"). Today's synth must update that same release in place (same logical id,
release name and namespace: CloudFormation updates, Helm upgrades; nothing is uninstalled) and
mount the same claims at the same paths, named the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
BEFORE = json.loads((Path(__file__).parent / "data" / "upgrade" / "daskhub-2024.1.1-release.json").read_text())


def _flat(value):
    """A CDK-embedded JSON document with its tokens read as "TOKEN"."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        value = sep.join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def template(default_templates) -> dict:
    return default_templates["helio-Daskhub"]["Resources"]


def test_the_hub_release_is_the_daskhub_release_upgraded_in_place(template):
    old = BEFORE["hub_release"]
    resource = template.get(old["logical_id"])
    assert resource is not None, "the hub release must keep the daskhub release's logical id (else CFN deletes it)"
    props = resource["Properties"]
    assert resource["Type"] == "Custom::AWSCDK-EKS-HelmChart"
    assert (props["Release"], props["Namespace"]) == (old["release"], old["namespace"])
    assert (props["Chart"], props["Version"]) == ("jupyterhub", "4.4.0")


def test_homes_and_hub_database_are_found_where_they_were(template):
    old = BEFORE["hub_release"]["values"]
    new = _flat(template[BEFORE["hub_release"]["logical_id"]]["Properties"]["Values"])
    assert new["hub"]["db"] == old["hub"]["db"], "the hub database claim (hub-db-dir on the hub-db volume)"
    assert new["singleuser"]["storage"] == old["singleuser"]["storage"], "homes: same claim, same subPath"
    # KubeSpawner 7 defaults to a new slug scheme; `escape` keeps every {username} folder name.
    assert new["hub"]["config"]["KubeSpawner"]["slug_scheme"] == old["hub"]["config"]["KubeSpawner"]["slug_scheme"]
    assert new["singleuser"]["serviceAccountName"] == old["singleuser"]["serviceAccountName"]


def test_volumes_and_access_points_are_unchanged(template):
    for logical_id, manifests in BEFORE["volumes"].items():
        assert logical_id in template, f"{logical_id} gone: its volume would be deleted and made again"
        assert _flat(template[logical_id]["Properties"]["Manifest"]) == manifests, logical_id
    for logical_id, path in BEFORE["access_points"].items():
        assert template[logical_id]["Properties"]["RootDirectory"]["Path"] == path


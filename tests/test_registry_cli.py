"""`heliocloud registry rebuild|verify|federation` against a running moto server."""
from __future__ import annotations

import json

import pytest

from heliocloud.cli import main
from tests.registry_support import BUCKET, REPO, aia_key, make_registry, mms_key

pytestmark = pytest.mark.moto
CONFIG = str(REPO / "instance.yaml")


@pytest.fixture
def registry(moto):
    return make_registry()


def registry_cli(*args: str) -> int:
    return main(["registry", "-c", CONFIG, *args])


def put_objects(registry, n: int = 30) -> list[str]:
    keys = [aia_key(f"2024123{d}T{h:02d}0000") for d in (0, 1) for h in range(n // 2)]
    keys += [mms_key("20250101000000"), "stray/file.bin"]
    for key in keys:
        registry.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 7)
    return keys


def test_verify_reports_drift_then_rebuild_repairs_it(registry, capsys):
    put_objects(registry)  # events never processed: the index knows nothing yet
    assert registry_cli("verify", BUCKET) == 1
    report = capsys.readouterr().out
    assert "index/aia_0094_2024.csv: missing index file (30 rows expected)" in report
    assert "catalog.json: missing" in report

    assert registry_cli("rebuild", BUCKET) == 0
    assert "32 objects, 31 rows in 2 index files, 1 rejects" in capsys.readouterr().out
    assert registry_cli("verify", BUCKET) == 0
    assert "index matches the objects" in capsys.readouterr().out
    assert len(registry.rows("aia_0094", 2024)) == 30
    assert registry.read("index/rejects.csv").splitlines()[1].startswith("stray/file.bin,")
    # The queued events of the same objects are duplicates now: indexing them changes nothing.
    before = {k: registry.read(k) for k in ("index/aia_0094_2024.csv", "index/mms1_fgm_brst_l2_2025.csv")}
    registry.drain()
    assert before == {k: registry.read(k) for k in before}
    assert registry_cli("verify", BUCKET) == 0


def test_verify_catches_tampering_and_stale_files(registry, capsys):
    put_objects(registry, 6)
    registry.drain()
    assert registry_cli("verify", BUCKET) == 0
    capsys.readouterr()
    csv = registry.read("index/aia_0094_2024.csv").splitlines()
    registry.s3.put_object(Bucket=BUCKET, Key="index/aia_0094_2024.csv", Body="\n".join(csv[:-1]) + "\n")
    registry.s3.put_object(Bucket=BUCKET, Key="index/aia_0094_2019.csv", Body="start,stop,datakey,filesize\n")
    catalog = registry.catalog()
    catalog["catalog"][0]["stop"] = "2030-01-01T00:00:00Z"
    registry.s3.put_object(Bucket=BUCKET, Key="catalog.json", Body=json.dumps(catalog))
    assert registry_cli("verify", BUCKET) == 1
    out = capsys.readouterr().out
    assert "1 missing row(s)" in out
    assert "aia_0094_2019.csv" in out
    assert "stop is '2030-01-01T00:00:00Z'" in out
    assert registry_cli("rebuild", BUCKET) == 0
    assert registry.read("index/aia_0094_2019.csv") is None
    assert registry_cli("verify", BUCKET) == 0


def test_rebuild_after_deletes_empties_what_is_gone(registry, capsys):
    keys = put_objects(registry, 4)
    registry.drain()
    for key in keys:
        registry.s3.delete_object(Bucket=BUCKET, Key=key)
    registry.sqs.purge_queue(QueueUrl=registry.queue_url)  # the delete events are lost
    assert registry_cli("verify", BUCKET) == 1
    assert registry_cli("rebuild", BUCKET) == 0
    assert registry.catalog()["catalog"] == []
    assert registry.read("index/aia_0094_2024.csv") is None
    assert registry_cli("verify", BUCKET) == 0


def test_unknown_bucket_is_a_clear_error(registry, capsys):
    assert registry_cli("verify", "not-a-registry-bucket") == 2
    assert "not a registry bucket" in capsys.readouterr().err


def test_federation_lists_public_buckets_only(tmp_path, capsys):
    text = (REPO / "instance.yaml").read_text().replace("      public: false ", "      public: true ")
    text = text.replace("  region: us-east-1", "  region: us-west-2")
    path = tmp_path / "instance.yaml"
    path.write_text(text + "\n")
    assert main(["registry", "-c", CONFIG, "federation"]) == 0
    assert json.loads(capsys.readouterr().out)["registry"] == []
    assert main(["registry", "-c", str(path), "federation"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["version"] == "1.0" and document["modificationDate"].endswith("Z")
    assert document["registry"] == [{"endpoint": f"s3://{BUCKET}/", "name": "HelioCloud example data",
                                     "provider": "aws", "region": "us-east-1"}]

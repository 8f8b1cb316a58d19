"""Pure functions of the registry: key → row, rows → CSV, summaries → catalog, config checks."""
from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json

import pytest
import yaml
from hc_registry.catalog import (catalog_document, catalog_entry, csv_to_rows, federation_document, rows_to_csv,
                                 summarize)
from hc_registry.indexer import BadMessage, Effect, current_version_size, event_effect, merge, parse_message
from hc_registry.rules import BucketRules, Parsed, Reject, Row
from hc_registry.state import order_token

from heliocloud.config import ConfigError, validate
from heliocloud.registry_config import bucket_rules
from tests.registry_support import BUCKET, REPO, aia_key, mms_key, s3_message

pytestmark = pytest.mark.unit
DEFAULT = yaml.safe_load((REPO / "instance.yaml").read_text())


@pytest.fixture(scope="module")
def rules() -> BucketRules:
    from heliocloud.config import load

    return bucket_rules(load(REPO / "instance.yaml"), "us-east-1")[BUCKET]


def test_aia_key_becomes_a_row_with_cadence_stop(rules):
    key = "sdo/aia/20240101/0094/sdo_aia_h2_20240101T000000_0094_v1.fits"
    assert rules.classify(key, 123) == Parsed("aia_0094", 2024, Row(
        "2024-01-01T00:00:00Z", "2024-01-01T00:04:00Z", f"s3://{BUCKET}/{key}", 123))


def test_mms_key_becomes_a_row_with_stop_equal_to_start(rules):
    key = "mms/mms1/fgm/brst/l2/2024/01/01/mms1_fgm_brst_l2_20240101000000_v4.18.0.cdf"
    parsed = rules.classify(key, 5)
    assert parsed.partition == "mms1_fgm_brst_l2#2024"
    assert parsed.row.start == parsed.row.stop == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize("key, reason", [
    ("README.txt", "under no dataset prefix"),
    ("sdo/aia/20240101/0131/sdo_aia_h2_20240101T000000_0131_v1.fits", "does not match its pattern"),
    ("sdo/aia/20240101/0094/sdo_aia_h2_20240101T000000_0094_v1.fits.gz", "does not match its pattern"),
    ("mms/mms1/fgm/brst/l2/2024/02/30/mms1_fgm_brst_l2_20240230000000_v4.18.0.cdf", "does not parse"),
])
def test_keys_that_are_rejected_say_why(rules, key, reason):
    result = rules.classify(key, 1)
    assert isinstance(result, Reject) and reason in result.reason


def test_index_objects_are_neither_rows_nor_rejects(rules):
    for key in ("catalog.json", "index/aia_0094_2024.csv", "index/rejects.csv"):
        assert rules.classify(key, 1) is None
    assert isinstance(rules.classify("index/notes.csv", 1), Reject)


def test_stop_groups_and_milliseconds():
    rules = BucketRules.from_config({"name": "b", "datasets": [{
        "id": "x", "title": "X", "prefix": "x/", "filetype": "cdf",
        "pattern": r"x_(?P<start>\d{8}T\d{6}\.\d{3})_(?P<stop>\d{8}T\d{6}\.\d{3})\.cdf",
        "time_format": "%Y%m%dT%H%M%S.%f", "stop": {"time_format": "%Y%m%dT%H%M%S.%f"}}]})
    row = rules.classify("x/x_20240101T000000.250_20240101T000100.500.cdf", 1).row
    assert (row.start, row.stop) == ("2024-01-01T00:00:00.250Z", "2024-01-01T00:01:00.500Z")
    assert "before start" in rules.classify("x/x_20240101T000100.000_20240101T000000.000.cdf", 1).reason


def test_s3_event_keys_are_url_decoded(rules):
    key = "sdo/aia/20240101/0094/sdo_aia_h2_20240101T000000_0094_v1.fits"
    quoted = "sdo%2Faia%2F20240101%2F0094%2Fsdo_aia_h2_20240101T000000_0094_v1.fits"
    events = parse_message(s3_message(key, quoted=quoted)["body"], {BUCKET: rules})
    assert events[0].key == key
    assert parse_message(s3_message("a b+c", quoted="a+b%2Bc")["body"], {BUCKET: rules})[0].key == "a b+c"
    with pytest.raises(BadMessage):
        parse_message("[]", {BUCKET: rules})


@pytest.mark.parametrize("name, versioned, effect", [
    ("ObjectCreated:Put", False, Effect.CURRENT),
    ("ObjectCreated:CompleteMultipartUpload", True, Effect.CURRENT),
    ("ObjectRemoved:Delete", False, Effect.NO_CURRENT),
    ("ObjectRemoved:Delete", True, Effect.LOOK_UP),  # which version went? S3 knows what is current now
    ("ObjectRemoved:DeleteMarkerCreated", True, Effect.NO_CURRENT),
    ("LifecycleExpiration:Delete", False, Effect.NO_CURRENT),
    ("LifecycleExpiration:Delete", True, Effect.LOOK_UP),  # a noncurrent version or an expired marker
    ("LifecycleExpiration:DeleteMarkerCreated", True, Effect.NO_CURRENT),
    ("LifecycleTransition", True, None),
    ("ObjectRestore:Delete", False, None),  # a restored copy expires; the object stays
    ("ObjectTagging:Put", True, None),
])
def test_what_each_event_says_about_the_current_version(name, versioned, effect):
    assert event_effect(name, versioned=versioned) is effect


def test_removals_on_a_versioned_bucket_are_looked_up_and_keep_their_order(rules):
    versioned = dataclasses.replace(rules, versioned=True)
    key = aia_key("20240101T000000")
    body = s3_message(key, name="ObjectRemoved:Delete", size=None, version_id="v1", sequencer="0A")["body"]
    [on_versioned] = parse_message(body, {BUCKET: versioned})
    [on_unversioned] = parse_message(body, {BUCKET: rules})
    assert (on_versioned.effect, on_unversioned.effect) == (Effect.LOOK_UP, Effect.NO_CURRENT)
    assert on_versioned.order == on_unversioned.order == order_token("0A", "2026-01-01T00:00:00.000Z")
    shown = on_versioned.with_current_size(7)
    assert (shown.effect, shown.size, shown.order) == (Effect.CURRENT, 7, on_versioned.order)
    hidden = on_versioned.with_current_size(None)
    assert (hidden.effect, hidden.order) == (Effect.NO_CURRENT, on_versioned.order)


@pytest.mark.parametrize("listing, size", [
    ({"Versions": [{"Key": "k", "IsLatest": True, "Size": 7}]}, 7),
    ({"DeleteMarkers": [{"Key": "k", "IsLatest": True}]}, None),  # a marker on top: nothing shows
    ({"Versions": [{"Key": "k", "IsLatest": False, "Size": 7}], "DeleteMarkers": [{"Key": "k", "IsLatest": True}]},
     None),
    ({"Versions": [{"Key": "k.gz", "IsLatest": True, "Size": 9}]}, None),  # only a longer key under the prefix
    ({}, None),
])
def test_current_version_size_from_a_version_listing(listing, size):
    assert current_version_size(listing, "k") == size


def test_sequencers_compare_right_padded():
    assert order_token("0055AED6DCD90281E5", "t") < order_token("0055AED6DCD90281E6", "t")
    assert order_token("00A", "t") == order_token("00a000", "t")
    assert order_token("00A", "t") > order_token("009FFFFF", "t")
    assert order_token(None, "2024-01-01T00:00:00.001Z") > order_token(None, "2024-01-01T00:00:00.000Z")


def test_csv_format_matches_the_cloudcatalog_client():
    rows = [Row("2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z", "s3://b/k2", 2),
            Row("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "s3://b/a,b", 1)]
    text = rows_to_csv(rows).decode()
    assert text.splitlines()[0] == "start,stop,datakey,filesize"
    assert text.splitlines()[1] == '2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,"s3://b/a,b",1'  # quoted only if needed
    assert text.splitlines()[2] == "2024-01-02T00:00:00Z,2024-01-02T00:00:00Z,s3://b/k2,2"
    assert not text.startswith("#") and text.endswith("\n")
    assert csv_to_rows(text) == sorted(rows)
    assert list(csv.reader(io.StringIO(text)))[1][2] == "s3://b/a,b"


def test_catalog_entry_and_document(rules):
    parts = [{"count": 2, "start": "2024-03-01T00:00:00Z", "stop": "2024-12-31T23:59:59Z", "modified": "2026-01-01T00:00:00Z"},
             {"count": 1, "start": "2025-01-01T00:00:00Z", "stop": "2025-01-01T00:04:00Z", "modified": "2026-01-02T00:00:00Z"},
             {"count": 0, "start": "", "stop": "", "modified": "2026-01-03T00:00:00Z"}]
    entry = catalog_entry(rules, "aia_0094", parts)
    assert entry == {"id": "aia_0094", "index": f"s3://{BUCKET}/index/", "title": "SDO AIA 94 Å level 2 images (FITS)",
                     "start": "2024-03-01T00:00:00Z", "stop": "2025-01-01T00:04:00Z",
                     "modification": "2026-01-02T00:00:00Z", "indextype": "csv", "filetype": "fits"}
    assert catalog_entry(rules, "aia_0094", parts[2:]) is None
    doc = catalog_document(rules, [entry])
    assert doc["version"] == "1.0" and float(doc["version"]) == 1.0
    assert doc["status"] == {"code": 1200, "message": "OK"}
    assert (doc["endpoint"], doc["egress"], doc["region"]) == (f"s3://{BUCKET}/", "none", "us-east-1")
    assert "Cloudy" not in doc
    assert summarize([Row("b", "c", "k", 1), Row("a", "d", "j", 2)]) == {"count": 2, "start": "a", "stop": "d"}


def test_merge_sets_each_changed_key_to_its_stored_state():
    existing = {"a": ("1",), "b": ("2",), "c": ("3",)}
    states = {"a": {"deleted": True, "cells": []}, "b": {"deleted": False, "cells": ["22"]}}
    assert merge(existing, states, ["a", "b", "z"]) == {"b": ("22",), "c": ("3",)}


def test_federation_document_has_only_public_buckets():
    public = BucketRules(name="open", datasets=(), public=True, region="us-west-2", title="Open data")
    private = BucketRules(name="closed", datasets=())
    doc = federation_document([public, private], modified="2026-01-01T00:00:00Z")
    assert doc == {"version": "1.0", "modificationDate": "2026-01-01T00:00:00Z", "registry": [
        {"endpoint": "s3://open/", "name": "Open data", "provider": "aws", "region": "us-west-2"}]}
    assert json.dumps(doc)


def check(mutate) -> list[str]:
    data = copy.deepcopy(DEFAULT)
    mutate(data["registry"]["buckets"][0])
    with pytest.raises(ConfigError) as info:
        validate(data)
    return info.value.problems


def test_default_registry_config_is_valid():
    cfg = validate(copy.deepcopy(DEFAULT))
    assert [d["id"] for d in cfg["registry"]["buckets"][0]["datasets"]] == ["aia_0094", "mms1_fgm_brst_l2",
                                                                        "goes16_xrsf_l2_flx1s"]


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b["datasets"][1].update(id="aia_0094"), "datasets[1].id: dataset id 'aia_0094' is used twice"),
    (lambda b: b["datasets"][0].update(pattern="[0-9]{8}/0094/.*"), "datasets[0].pattern: needs at least one named group"),
    (lambda b: b["datasets"][0].update(time_format="%m%dT%H%M%S"), "datasets[0].time_format: '%m%dT%H%M%S' has no year"),
    (lambda b: b["datasets"][0].update(stop={"time_format": "%Y"}), "datasets[0].stop.time_format: the pattern has no named group"),
    (lambda b: b["datasets"][0].update(stop={"cadence_seconds": 1, "time_format": "%Y"}), "datasets[0].stop"),
    (lambda b: b["datasets"][0].update(example="sdo/aia/x.fits"), "datasets[0].example: 'sdo/aia/x.fits' is rejected"),
    (lambda b: b["datasets"][1].update(prefix="", pattern=r"(?P<start>.*)", example=aia_key("20240101T000000")),
     "datasets[1].example"),
    (lambda b: b["datasets"][0].update(filetype="fits, cdf"), "datasets[0].filetype"),
    (lambda b: b.update(index_prefix="index"), "index_prefix"),
    (lambda b: b["datasets"][0].update(pattern="(?P<start>[0-9"), "not a valid regular expression"),
])
def test_registry_config_problems_name_the_path(mutate, message):
    problems = check(mutate)
    assert any(message in p for p in problems), problems


def test_duplicate_bucket_names_are_refused():
    data = copy.deepcopy(DEFAULT)
    data["registry"]["buckets"].append(copy.deepcopy(data["registry"]["buckets"][0]))
    with pytest.raises(ConfigError) as info:
        validate(data)
    assert any("registry.buckets[1].name: bucket 'helio-data-example' is listed twice" in p for p in info.value.problems)


def test_example_keys_of_the_default_config_parse(rules):
    assert rules.classify(aia_key("20240101T000000"), 1).dataset == "aia_0094"
    assert rules.classify(mms_key("20240101000000"), 1).dataset == "mms1_fgm_brst_l2"

"""The indexer against a running moto server: real S3→SQS notifications, crafted events for the
orders S3 may deliver in, concurrent batches, rejects and the DLQ."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests.registry_support import BUCKET, aia_key, make_registry, mms_key, s3_message

pytestmark = pytest.mark.moto


@pytest.fixture
def registry(moto):
    return make_registry()


def test_create_delete_recreate_through_real_notifications(registry):
    key = aia_key("20240315T120000")
    registry.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 10)
    registry.drain()
    assert registry.rows("aia_0094", 2024) == [
        ["2024-03-15T12:00:00Z", "2024-03-15T12:04:00Z", f"s3://{BUCKET}/{key}", "10"]]
    entry = registry.catalog()["catalog"][0]
    assert (entry["id"], entry["start"], entry["stop"]) == ("aia_0094", "2024-03-15T12:00:00Z", "2024-03-15T12:04:00Z")

    registry.s3.delete_object(Bucket=BUCKET, Key=key)
    registry.drain()
    assert registry.read("index/aia_0094_2024.csv") is None  # an empty year has no file
    assert registry.catalog()["catalog"] == []  # and a dataset without rows leaves the catalog

    registry.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 12)
    registry.drain()
    assert [r[3] for r in registry.rows("aia_0094", 2024)] == ["12"]
    assert [e["id"] for e in registry.catalog()["catalog"]] == ["aia_0094"]


def test_url_encoded_keys_from_real_events(registry):
    odd = "junk/a b+c%2F(1).txt"  # S3 events encode spaces as '+', a real '+' as %2B
    registry.s3.put_object(Bucket=BUCKET, Key=odd, Body=b"z")
    registry.drain()
    assert registry.read("index/rejects.csv").splitlines()[1:] == [f"{odd},under no dataset prefix,1"]


def test_duplicates_and_out_of_order_events(registry):
    key = mms_key("20240601120000")
    put_old = s3_message(key, size=10, sequencer="0055AED6DCD90281E5")
    put_new = s3_message(key, size=20, sequencer="0055AED6DCD90281E6")
    delete = s3_message(key, name="ObjectRemoved:Delete", sequencer="0055AED6DCD90281E7")

    assert registry.handle(put_new, put_new) == {"batchItemFailures": []}
    registry.handle(put_old)  # older PUT after a newer one: a no-op
    assert [r[3] for r in registry.rows("mms1_fgm_brst_l2", 2024)] == ["20"]
    registry.handle(delete)
    registry.handle(put_new, put_old)  # late PUTs cannot resurrect a deleted object
    assert registry.rows("mms1_fgm_brst_l2", 2024) == []
    # A longer sequencer is later when right-padded (S3's rule), not when compared as a number.
    registry.handle(s3_message(key, size=30, sequencer="0055AED6DCD90281E70"))
    assert [r[3] for r in registry.rows("mms1_fgm_brst_l2", 2024)] == ["30"]
    registry.handle(s3_message(key, size=40, sequencer="0055AED6DCD90281E7000000"))  # same value, padded
    assert [r[3] for r in registry.rows("mms1_fgm_brst_l2", 2024)] == ["40"]


def test_reordered_batch_keeps_the_newest_event_per_key(registry):
    keys = [aia_key(f"20240101T00{m:02d}00") for m in range(0, 60, 4)]
    messages = []
    for n, key in enumerate(keys):
        messages.append(s3_message(key, size=n, sequencer=f"{n:04X}01"))
        if n % 2:
            messages.append(s3_message(key, name="ObjectRemoved:Delete", sequencer=f"{n:04X}02"))
    registry.handle(*reversed(messages))
    rows = registry.rows("aia_0094", 2024)
    assert [r[2].rsplit("/", 1)[1] for r in rows] == [k.rsplit("/", 1)[1] for k in keys[::2]]
    assert rows == sorted(rows)


def test_year_boundary_splits_partitions_and_spans_the_catalog(registry):
    registry.handle(s3_message(mms_key("20241231235959"), sequencer="01"),
                    s3_message(mms_key("20250101000000"), sequencer="01"),
                    s3_message(aia_key("20241231T235800"), sequencer="01"))
    assert [r[0] for r in registry.rows("mms1_fgm_brst_l2", 2024)] == ["2024-12-31T23:59:59Z"]
    assert [r[0] for r in registry.rows("mms1_fgm_brst_l2", 2025)] == ["2025-01-01T00:00:00Z"]
    # A row lives in the year of its start, even when its stop is in the next year.
    assert registry.rows("aia_0094", 2024)[0][:2] == ["2024-12-31T23:58:00Z", "2025-01-01T00:02:00Z"]
    entries = {e["id"]: e for e in registry.catalog()["catalog"]}
    assert (entries["mms1_fgm_brst_l2"]["start"], entries["mms1_fgm_brst_l2"]["stop"]) == (
        "2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z")
    assert entries["aia_0094"]["stop"] == "2025-01-01T00:02:00Z"


def test_rejects_are_reported_and_never_block_good_events(registry):
    good = aia_key("20240202T020200")
    bad_time = aia_key("20241399T000000")
    response = registry.handle(s3_message("notes/readme.txt", sequencer="01"), s3_message(bad_time, sequencer="01"),
                               s3_message(good, sequencer="01"), s3_message("sdo/aia/odd.fits", sequencer="01"))
    assert response == {"batchItemFailures": []}
    assert len(registry.rows("aia_0094", 2024)) == 1
    report = registry.read("index/rejects.csv").splitlines()
    assert report[0] == "key,reason,filesize"
    assert report[1:] == [
        "notes/readme.txt,under no dataset prefix,100",
        f"{bad_time},aia_0094: time '20241399T000000' does not parse with '%Y%m%dT%H%M%S',100",
        "sdo/aia/odd.fits,under the prefix of aia_0094 but does not match its pattern,100",
    ]
    registry.handle(s3_message("notes/readme.txt", name="ObjectRemoved:Delete", sequencer="02"))
    assert len(registry.read("index/rejects.csv").splitlines()) == 3
    # Index objects the registry writes itself are neither rows nor rejects.
    registry.handle(s3_message("catalog.json", sequencer="03"), s3_message("index/aia_0094_2024.csv", sequencer="03"))
    assert len(registry.read("index/rejects.csv").splitlines()) == 3


def test_keys_near_the_s3_limit_are_indexed_and_rejected_like_any_other(registry):
    """S3 keys reach 1,024 bytes, DynamoDB sort keys too: a marker (key + order) must still fit,
    and a long key must not fail the batch it arrives in."""
    stamp = "20240303T030300"
    long_valid = aia_key(stamp).replace("_v1.fits", "_v" + "0" * (1000 - len(aia_key(stamp))) + "1.fits")
    long_reject = "notes/" + "n" * (1000 - len("notes/"))
    good = aia_key("20240303T030700")
    assert len(long_valid.encode()) == len(long_reject.encode()) == 1000
    response = registry.handle(s3_message(long_valid, sequencer="01"), s3_message(long_reject, sequencer="01"),
                               s3_message(good, sequencer="01"))
    assert response == {"batchItemFailures": []}
    assert [r[2] for r in registry.rows("aia_0094", 2024)] == [f"s3://{BUCKET}/{long_valid}", f"s3://{BUCKET}/{good}"]
    assert registry.read("index/rejects.csv").splitlines()[1:] == [f"{long_reject},under no dataset prefix,100"]
    registry.handle(s3_message(long_valid, name="ObjectRemoved:Delete", sequencer="02"))
    assert [r[2] for r in registry.rows("aia_0094", 2024)] == [f"s3://{BUCKET}/{good}"]


def test_two_concurrent_batches_on_one_partition_lose_nothing(registry):
    """Batch A holds the partition lease while its CSV upload is slowed down; batch B records its
    changes meanwhile, finds the lease taken and leaves; A must merge B's rows before letting go."""
    import boto3

    slow_s3 = boto3.client("s3")
    csv_puts = {"a": 0, "b": 0}

    def slow_index_put(params, **_):
        if params["Key"].endswith("_2024.csv"):
            csv_puts["a"] += 1
            time.sleep(1.0)

    def count_b(params, **_):
        if params["Key"].endswith("_2024.csv"):
            csv_puts["b"] += 1

    slow_s3.meta.events.register("provide-client-params.s3.PutObject", slow_index_put)
    b_s3 = boto3.client("s3")
    b_s3.meta.events.register("provide-client-params.s3.PutObject", count_b)
    batch_a = [s3_message(aia_key(f"20240501T{h:02d}{m:02d}00"), sequencer="01") for h in range(4) for m in range(0, 60, 4)]
    batch_b = [s3_message(aia_key(f"20240502T{h:02d}{m:02d}00"), sequencer="01") for h in range(4) for m in range(0, 60, 4)]
    results = {}
    a = threading.Thread(target=lambda: results.setdefault("a", registry.new_indexer(slow_s3).handle({"Records": batch_a})))
    a.start()
    time.sleep(0.4)  # A has the lease and is uploading
    results["b"] = registry.new_indexer(b_s3).handle({"Records": batch_b})
    a.join()
    assert results == {"a": {"batchItemFailures": []}, "b": {"batchItemFailures": []}}
    assert csv_puts["b"] == 0, "B should have found the lease taken"
    assert csv_puts["a"] == 2, "A should have gone round once more for B's changes"
    rows = registry.rows("aia_0094", 2024)
    assert len(rows) == len(batch_a) + len(batch_b) == len({r[2] for r in rows})
    assert registry.catalog()["catalog"][0]["stop"] == rows[-1][1]


def test_poison_message_goes_to_the_dlq_and_the_rest_is_indexed(moto):
    registry = make_registry(visibility_timeout=1, max_receive_count=2)
    registry.sqs.send_message(QueueUrl=registry.queue_url, MessageBody="this is not an S3 event")
    registry.sqs.send_message(QueueUrl=registry.queue_url, MessageBody=json.dumps({"Records": [{"eventName": "x"}]}))
    registry.s3.put_object(Bucket=BUCKET, Key=aia_key("20240707T070000"), Body=b"1")
    dlq_url = registry.sqs.get_queue_url(QueueName=registry.queue_url.rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        registry.poller.poll_once(wait=1)
        attrs = registry.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        if attrs["Attributes"]["ApproximateNumberOfMessages"] == "2":
            break
    registry.publisher.flush()
    dead = registry.sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"][:8] for m in dead) == sorted(['{"Record', "this is "])
    assert len(registry.rows("aia_0094", 2024)) == 1


def test_handler_reports_malformed_messages_as_batch_item_failures(registry):
    good = s3_message(aia_key("20240808T080000"), sequencer="01")
    response = registry.handle({"messageId": "bad-json", "body": "{"}, {"messageId": "no-records", "body": "{}"},
                               {"messageId": "other-bucket", "body": s3_message("k", bucket="elsewhere")["body"]},
                               {"messageId": "test-event", "body": json.dumps({"Event": "s3:TestEvent"})}, good)
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in ("bad-json", "no-records", "other-bucket")]}
    assert len(registry.rows("aia_0094", 2024)) == 1


def test_lambda_entry_point_reads_its_rules_file_and_table(registry, monkeypatch, tmp_path):
    from hc_registry import handler

    from heliocloud.registry_config import registry_rules, state_table_name

    rules_file = tmp_path / "registry_rules.json"
    rules_file.write_text(json.dumps(registry_rules(registry.config)))
    monkeypatch.setenv("REGISTRY_RULES", str(rules_file))
    monkeypatch.setenv("REGISTRY_TABLE", state_table_name(registry.config))
    monkeypatch.setattr(handler, "_indexer", None)
    event = {"Records": [s3_message(mms_key("20240404040404"), sequencer="01"), {"messageId": "x", "body": "?"}]}
    class Context:  # the part of the Lambda context object the handler uses
        def get_remaining_time_in_millis(self):
            return 120_000

    assert handler.handle(event, Context()) == {"batchItemFailures": [{"itemIdentifier": "x"}]}
    assert registry.rows("mms1_fgm_brst_l2", 2024)[0][0] == "2024-04-04T04:04:04Z"
    assert registry.catalog()["region"] == "us-east-1"


def test_lease_holder_goes_round_while_changes_arrive_and_hands_over_when_out_of_time(registry):
    from hc_registry.state import LeaseLost, StateStore

    from heliocloud.registry_config import state_table_name

    store = StateStore(registry.ddb, state_table_name(registry.config))
    pk, sk = store.partition_lock(BUCKET, "aia_0094#2024")
    rounds = []

    def busy(lease):  # another batch records a change during each of the first two rounds
        rounds.append(lease.version)
        if len(rounds) <= 2:
            store.bump(pk, sk)
        return None

    assert store.exclusively(pk, sk, busy) is True
    assert len(rounds) == 3 and rounds == sorted(rounds)
    assert store.acquire(pk, sk) is not None  # released

    other = StateStore(registry.ddb, state_table_name(registry.config))
    assert other.exclusively(pk, sk, busy) is False  # the lease above is still held: leave it to the holder

    pk2, sk2 = store.partition_lock(BUCKET, "aia_0094#2025")
    with pytest.raises(LeaseLost):
        store.exclusively(pk2, sk2, lambda lease: store.bump(pk2, sk2), deadline=time.time() - 1)
    assert store.acquire(pk2, sk2) is not None  # handed back, not left to expire

"""Versioned buckets and lifecycle expirations against a running moto server: the versions,
delete markers and current version of each key are real (a versioned bucket in moto), and so is
the S3→SQS path where moto notifies.

Moto 5.2 notifies only part of what S3 does on a versioned bucket: ObjectCreated:* (without
versionId or sequencer), and ObjectRemoved:Delete when the last version of a key is deleted. It
sends nothing when a delete marker is created, or when a noncurrent version or a delete marker
is deleted, and it never runs lifecycle rules (it stores them). So each test does the real
operation in moto, and the event moto leaves out is sent in the shape S3 documents (with
``versionId``, and ``sequencer`` where the test is about order): to the queue, or to the
handler directly for the orders SQS may deliver in.
"""
from __future__ import annotations

import itertools

import boto3
import pytest

from tests.registry_support import (
    BUCKET,
    aia_key,
    make_registry,
    moto_event_time,
    s3_message,
)

pytestmark = pytest.mark.moto
_minutes = itertools.count()


@pytest.fixture
def versioned(moto):
    return make_registry(versioning=True)


@pytest.fixture
def unversioned(moto):
    return make_registry()


def fresh_key() -> str:
    """A key of its own per scenario and delivery order (one AIA image time each)."""
    n = next(_minutes)
    return aia_key(f"202403{1 + n // 1440:02d}T{n // 60 % 24:02d}{n % 60:02d}00")


def size_in_index(registry, key: str) -> int | None:
    """The key's filesize in its CSV, or None when it has no row."""
    sizes = [int(r[3]) for r in registry.rows("aia_0094", 2024) if r[2] == f"s3://{BUCKET}/{key}"]
    assert len(sizes) <= 1
    return sizes[0] if sizes else None


def put(registry, key: str, size: int) -> str:
    return registry.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * size)["VersionId"]


def created(key: str, version: str, size: int, sequencer: str | None = None, **kw) -> dict:
    return s3_message(key, size=size, version_id=version, sequencer=sequencer, **kw)


def removed(key: str, version: str, sequencer: str | None = None, *, name: str = "ObjectRemoved:Delete",
            **kw) -> dict:
    """A removal: S3 sends its version (or the marker's) and no size."""
    return s3_message(key, name=name, size=None, version_id=version, sequencer=sequencer, **kw)


# ---------------------------------------------------------------- provisioning and the real queue
def test_sandbox_versions_the_bucket_and_notifies_lifecycle_expirations(versioned):
    assert versioned.bucket.versioned
    assert versioned.s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    events = versioned.s3.get_bucket_notification_configuration(Bucket=BUCKET)["QueueConfigurations"][0]["Events"]
    assert sorted(events) == ["s3:LifecycleExpiration:*", "s3:ObjectCreated:*", "s3:ObjectRemoved:*"]


def test_version_history_through_the_queue(versioned):
    """Two versions, a noncurrent version deleted, a delete marker created and removed, the last
    version deleted: the row always shows the current version. Moto's own events (PUTs, the last
    Delete) and the ones it leaves out travel the same queue, ordered by event time like moto's."""
    key = fresh_key()
    first = put(versioned, key, 10)
    second = put(versioned, key, 20)
    versioned.drain()
    assert size_in_index(versioned, key) == 20

    versioned.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=first)  # noncurrent: nothing shows differently
    versioned.send(removed(key, first, time=moto_event_time()))
    versioned.drain()
    assert size_in_index(versioned, key) == 20

    marker = versioned.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    versioned.send(removed(key, marker, name="ObjectRemoved:DeleteMarkerCreated", time=moto_event_time()))
    versioned.drain()
    assert size_in_index(versioned, key) is None

    versioned.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=marker)  # the second version shows again
    versioned.send(removed(key, marker, time=moto_event_time()))
    versioned.drain()
    assert size_in_index(versioned, key) == 20

    versioned.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=second)  # moto notifies this one itself
    versioned.drain()
    assert size_in_index(versioned, key) is None
    assert versioned.catalog()["catalog"] == []


def test_lifecycle_expiration_removes_the_row_on_an_unversioned_bucket(unversioned):
    key = fresh_key()
    unversioned.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 5)
    unversioned.drain()
    assert size_in_index(unversioned, key) == 5
    unversioned.send(s3_message(key, name="LifecycleExpiration:Delete", size=None, time=moto_event_time()))
    unversioned.drain()
    assert size_in_index(unversioned, key) is None


# ---------------------------------------------------------------- any delivery order
# Each scenario makes a key's history in moto and returns (events already delivered, events still
# in flight, the current version's size or None): the in-flight ones may arrive in any order.
def noncurrent_version_deleted(registry, key: str, *, name: str = "ObjectRemoved:Delete"):
    first, second = put(registry, key, 10), put(registry, key, 20)
    registry.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=first)
    return [], [created(key, first, 10, "0A01"), created(key, second, 20, "0A02"), removed(key, first, "0A03", name=name)], 20


def current_version_deleted(registry, key: str):
    first, second = put(registry, key, 10), put(registry, key, 20)
    registry.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=second)  # the first shows again
    return [], [created(key, first, 10, "0A01"), created(key, second, 20, "0A02"), removed(key, second, "0A03")], 10


def delete_marker_created(registry, key: str, *, name: str = "ObjectRemoved:DeleteMarkerCreated"):
    first = put(registry, key, 10)
    marker = registry.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    return [], [created(key, first, 10, "0A01"), removed(key, marker, "0A02", name=name)], None


def delete_marker_removed(registry, key: str):
    first = put(registry, key, 10)
    marker = registry.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    registry.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=marker)
    return [], [created(key, first, 10, "0A01"), removed(key, marker, "0A02", name="ObjectRemoved:DeleteMarkerCreated"),
                removed(key, marker, "0A03")], 10


def expired_delete_marker_removed(registry, key: str):
    """An indexed object is deleted (a marker), its version expires, then lifecycle's
    ExpiredObjectDeleteMarker removes the marker, which has nothing left below it."""
    first = put(registry, key, 10)
    marker = registry.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    registry.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=first)
    registry.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=marker)
    return [created(key, first, 10, "0A01")], [
        removed(key, marker, "0A02", name="ObjectRemoved:DeleteMarkerCreated"),
        removed(key, first, "0A03", name="LifecycleExpiration:Delete"),
        removed(key, marker, "0A04", name="LifecycleExpiration:Delete")], None


SCENARIOS = {
    "noncurrent version deleted": noncurrent_version_deleted,
    "current version deleted": current_version_deleted,
    "delete marker created": delete_marker_created,
    "delete marker removed": delete_marker_removed,
    "noncurrent version expired": lambda r, k: noncurrent_version_deleted(r, k, name="LifecycleExpiration:Delete"),
    "lifecycle delete marker": lambda r, k: delete_marker_created(r, k, name="LifecycleExpiration:DeleteMarkerCreated"),
    "expired delete marker removed": expired_delete_marker_removed,
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_delivery_order_ends_at_the_current_version(versioned, scenario):
    """S3's state is made first (as when events are still in flight); then the events in flight
    arrive in every order, one batch each, the first one again at the end (at-least-once), and
    once more all together in one reversed batch. The row must end as the key's current version."""
    make = SCENARIOS[scenario]
    settled, in_flight, current = make(versioned, key := fresh_key())
    for n, order in enumerate(itertools.permutations(range(len(in_flight)))):
        if n:
            settled, in_flight, current = make(versioned, key := fresh_key())
        delivered = [in_flight[i] for i in order]
        for message in settled + delivered + delivered[:1]:
            assert versioned.handle(message) == {"batchItemFailures": []}
        assert size_in_index(versioned, key) == current, f"delivered in order {order}"
    settled, in_flight, current = make(versioned, key := fresh_key())
    assert versioned.handle(*settled, *reversed(in_flight)) == {"batchItemFailures": []}
    assert size_in_index(versioned, key) == current


def test_a_look_up_that_sees_later_changes_is_overtaken_by_their_events(versioned):
    """A deletion's look-up may find S3 already past the event (here: the next upload); that
    answer is a real, newer state, and the events of the later changes still order after it."""
    key = fresh_key()
    first, second = put(versioned, key, 10), put(versioned, key, 20)
    versioned.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=second)
    third = put(versioned, key, 30)  # in S3 before the deletion's event is handled
    versioned.handle(removed(key, second, "0A03"))
    assert size_in_index(versioned, key) == 30
    marker = versioned.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    versioned.handle(removed(key, marker, "0A05", name="ObjectRemoved:DeleteMarkerCreated"))
    assert size_in_index(versioned, key) is None
    versioned.handle(created(key, third, 30, "0A04"), created(key, second, 20, "0A02"), created(key, first, 10, "0A01"))
    assert size_in_index(versioned, key) is None  # late uploads stay older than the marker


# ---------------------------------------------------------------- what it costs
def listing_versions(registry):
    """An indexer whose S3 client records the key of every ListObjectVersions it makes."""
    client, listed = boto3.client("s3"), []
    client.meta.events.register("provide-client-params.s3.ListObjectVersions",
                                lambda params, **_: listed.append(params["Prefix"]))
    return registry.new_indexer(client), listed


def test_unversioned_buckets_never_list_versions(unversioned):
    indexer, listed = listing_versions(unversioned)
    deleted, expired, kept = fresh_key(), fresh_key(), fresh_key()
    response = indexer.handle({"Records": [
        s3_message(deleted, sequencer="01"), s3_message(deleted, name="ObjectRemoved:Delete", size=None, sequencer="02"),
        s3_message(expired, sequencer="01"), s3_message(expired, name="LifecycleExpiration:Delete", size=None,
                                                        sequencer="02"),
        s3_message(kept, size=3, sequencer="01")]})
    assert response == {"batchItemFailures": []}
    assert listed == []
    assert [size_in_index(unversioned, k) for k in (deleted, expired, kept)] == [None, None, 3]


def test_versioned_buckets_list_versions_once_per_deleted_version_only(versioned):
    """Only a key whose newest event in the batch deleted a version is looked up, once however
    often it came; a PUT or a delete marker says by itself what is current."""
    indexer, listed = listing_versions(versioned)
    kept, put_last, marked, plain = fresh_key(), fresh_key(), fresh_key(), fresh_key()
    _, events, _ = noncurrent_version_deleted(versioned, kept)
    later_put = [removed(put_last, "v0", "01"), created(put_last, "v1", 4, "02")]
    marker = [created(marked, "v1", 4, "01"), removed(marked, "m1", "02", name="ObjectRemoved:DeleteMarkerCreated")]
    response = indexer.handle({"Records": events + events[-1:] + later_put + marker + [created(plain, "v1", 6, "01")]})
    assert response == {"batchItemFailures": []}
    assert listed == [kept]
    assert [size_in_index(versioned, k) for k in (kept, put_last, marked, plain)] == [20, 4, None, 6]

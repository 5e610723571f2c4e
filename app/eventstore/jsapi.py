"""The raw JetStream API this code speaks itself, beside nats.py's client: subjects, error codes and the
request bodies of pulls and direct reads.

nats.py covers stream and consumer management; the hot and special paths publish ``$JS.API`` requests
themselves (continuous pulls without a batch round trip, batched Direct Get, leader reads, paged stream
info). Their wire details live here once, so every caller spells them the same way. Error codes are
nats-server's ``JSErrCode`` values (server/errors.json).
"""

from __future__ import annotations

import orjson

API = "$JS.API"

# Error codes (the ``err_code`` of an API error answer).
CLUSTER_NO_PEERS = 10005  # "no suitable peers for placement": e.g. a peer offline (just restarted)
CLUSTER_UNAVAILABLE = 10008  # no JetStream meta leader / cluster not available
INSUFFICIENT_RESOURCES = 10023  # e.g. not enough peers online for an R3 placement
STREAM_NAME_IN_USE = 10058  # create of a stream that exists
STREAM_NOT_FOUND = 10059  # info (or any request) of a stream that does not exist
WRONG_LAST_SEQUENCE = 10071  # optimistic concurrency: Nats-Expected-Last-Subject-Sequence mismatch
STREAM_OFFLINE = 10118  # stream has no leader (during an election)
CONSUMER_EXISTS = 10148  # create of a durable consumer that exists with another config
BATCH_INCOMPLETE = 10176  # an atomic batch cut short (leader change)
BATCH_DUPLICATE_MSG_ID = 10201  # an atomic batch repeats a Nats-Msg-Id inside the dedupe window

# An append answered with one of these stored nothing, so sending the same messages again is safe.
TRANSIENT_APPEND_ERRORS = frozenset({CLUSTER_UNAVAILABLE, STREAM_OFFLINE, BATCH_INCOMPLETE})
# A start-up or provisioning request (stream/consumer info or create) answered with one of these
# succeeds once the cluster has its leaders and peers back (``eda provision`` waits up to --timeout).
TRANSIENT_API_ERRORS = frozenset(
    {CLUSTER_NO_PEERS, CLUSTER_UNAVAILABLE, INSUFFICIENT_RESOURCES, STREAM_OFFLINE}
)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more (the in-memory store's
    filters and the console's live feed both match as the server does)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def consumer_next_subject(stream: str, durable: str) -> str:
    """Where a pull request for a durable consumer goes (``CONSUMER.MSG.NEXT``)."""
    return f"{API}.CONSUMER.MSG.NEXT.{stream}.{durable}"


def direct_get_subject(stream: str) -> str:
    """Direct Get: answered by any replica (the leader's view only with ``STREAM.MSG.GET``)."""
    return f"{API}.DIRECT.GET.{stream}"


def stream_msg_get_subject(stream: str) -> str:
    """Message get answered by the stream leader."""
    return f"{API}.STREAM.MSG.GET.{stream}"


def stream_info_subject(stream: str) -> str:
    return f"{API}.STREAM.INFO.{stream}"


def stream_snapshot_subject(stream: str) -> str:
    """Snapshot of a stream, streamed to a deliver subject (backups: ``app.backup.snapshotapi``)."""
    return f"{API}.STREAM.SNAPSHOT.{stream}"


def stream_restore_subject(stream: str) -> str:
    """Restore of a stream that does not exist from a snapshot's archive."""
    return f"{API}.STREAM.RESTORE.{stream}"


def pull_request(batch: int, expires_s: float, idle_heartbeat_s: float | None = None) -> bytes:
    """The body of a ``CONSUMER.MSG.NEXT`` request: up to ``batch`` messages, expiring after
    ``expires_s``; with ``idle_heartbeat_s`` the server sends status 100 heartbeats while idle."""
    request = {"batch": batch, "expires": int(expires_s * 1e9)}
    if idle_heartbeat_s is not None:
        request["idle_heartbeat"] = int(idle_heartbeat_s * 1e9)
    return orjson.dumps(request)


def next_by_subject_request(seq: int, subject_filter: str, batch: int | None = None) -> bytes:
    """The body of a Direct Get or leader message get: the first message of ``subject_filter`` at or
    after ``seq`` (up to ``batch`` of them with Direct Get's batch mode)."""
    if batch is None:
        return orjson.dumps({"seq": seq, "next_by_subj": subject_filter})
    return orjson.dumps({"seq": seq, "next_by_subj": subject_filter, "batch": batch})


def stream_info_request(subjects_filter: str, offset: int) -> bytes:
    """The body of a ``STREAM.INFO`` request listing per-subject counts, one page from ``offset``."""
    return orjson.dumps({"subjects_filter": subjects_filter, "offset": offset})

"""The local stack's own pure helpers (the broker itself is exercised by every Kafka test)."""
import base64
import uuid

from reputation_pipeline.stack import local


def test_cluster_id_never_reads_as_an_option(monkeypatch):
    # 0xF8 as the first byte encodes to a leading '-' in base64url: the storage tool's
    # argument parser took such an id for an option and the stack failed to start
    dashed, plain = uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(int=1)
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    ids = iter([dashed, plain])
    monkeypatch.setattr(local.uuid, "uuid4", lambda: next(ids))
    assert local.new_cluster_id() == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")

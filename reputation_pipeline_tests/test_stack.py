"""The local stack's own helpers (the broker itself is exercised by every Kafka test)."""
import base64
import socket
import uuid

import pytest

from reputation_pipeline.stack import local


def test_cluster_id_never_reads_as_an_option(monkeypatch):
    # 0xF8 as the first byte encodes to a leading '-' in base64url: the storage tool's
    # argument parser took such an id for an option and the stack failed to start
    dashed, plain = uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(int=1)
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    ids = iter([dashed, plain])
    monkeypatch.setattr(local.uuid, "uuid4", lambda: next(ids))
    assert local.new_cluster_id() == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")


def test_a_port_held_by_a_client_connection_is_refused_before_the_broker_starts():
    # A connection whose local (ephemeral) port is P leaves nothing listening on P, yet the
    # broker's bind of P fails, while it is open and, when the client closed first, for the
    # minute it waits in TIME_WAIT: the check must say so, not let the JVM die on it.
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.bind(("127.0.0.1", 0))
        port = client.getsockname()[1]
        client.connect(server.getsockname())
        accepted, _ = server.accept()
        assert not local._port_open(port)
        with pytest.raises(local.StackError, match=f"port {port} cannot be bound"):
            local._check_free(port)
        with pytest.raises(local.StackError, match="already in use"):
            local._check_free(server.getsockname()[1])
        client.close()
        accepted.close()
        with pytest.raises(local.StackError, match=f"port {port} cannot be bound"):
            local._check_free(port)
    local._check_free(local.free_port())

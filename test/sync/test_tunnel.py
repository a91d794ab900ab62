"""An HTTPS origin through an HTTP ``CONNECT`` proxy, on one connection object used twice.

http.client reads the proxy's answer to ``CONNECT`` through the connection's
``response_class``, the same hook the client sets to read an exchange's response under that
exchange's deadline. The hook is the connection's own again once an exchange's head is read,
so a later ``connect()`` of the same connection object (the server closed the connection in
between) reads the proxy's answer as http.client does, not under an earlier deadline.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import pytest
import trustme
from testkit.emulator import api_for
from testkit.ws import Relay

from pieces_os_client.emulator import Emulator


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_emulator(tls_ca: trustme.CA) -> Iterator[Emulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with Emulator(ssl_context=context) as emu:
        yield emu


def test_a_later_connect_on_the_same_connection_is_not_read_under_an_earlier_deadline(
    tls_emulator: Emulator, tls_ca: trustme.CA
) -> None:
    with Relay() as proxy, api_for(
        tls_emulator.url, proxy=proxy.url, ca_cert_data=tls_ca.cert_pem.bytes().decode("ascii"),
        connection_pool_maxsize=1, max_retries=0,
    ) as api:
        started = time.monotonic()
        # a deadline for the whole attempt, body included; "Connection: close" makes the server
        # end the connection after this answer, so the pool's one connection object connects
        # (and tunnels) again on the next call
        first = api.conversations_identifiers_snapshot_with_http_info(
            _request_timeout=0.5, _headers={"Connection": "close"})
        assert first.status_code == 200
        assert first.headers is not None and first.headers.get("Connection", "").lower() == "close"
        assert len(proxy.heads) == 1
        time.sleep(max(0.0, started + 0.6 - time.monotonic()))  # that attempt's deadline is past
        # no retries: a CONNECT answer read under the expired deadline would fail this call
        second = api.conversations_identifiers_snapshot_with_http_info()
        assert second.status_code == 200
        assert len(proxy.heads) == 2 and all(head.startswith("CONNECT ") for head in proxy.heads)

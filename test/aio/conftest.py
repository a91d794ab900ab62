"""Fixtures shared by the asyncio client's tests."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme


@pytest.fixture(scope="module")
def tls() -> Iterator[Any]:
    """A server TLS context for 127.0.0.1 and the path of the CA file that verifies it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    with ca.cert_pem.tempfile() as ca_file:
        yield server, ca_file

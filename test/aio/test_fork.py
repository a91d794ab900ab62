"""An asyncio client used before ``os.fork()`` starts fresh in the child and goes on in the parent."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from pieces_os_client.emulator import Emulator


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_fresh(emu: Emulator) -> None:
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        from pieces_os_client import Configuration
        from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
        client = AsyncApiClient(Configuration(host={emu.url!r}))
        api = AsyncConversationsApi(client)
        async def call():
            return len((await api.conversations_identifiers_snapshot()).iterable)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(call())
        pid = os.fork()
        if pid == 0:
            asyncio.set_event_loop(None)
            asyncio.run(call())
            asyncio.run(client.aclose())
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        loop.run_until_complete(call())
        loop.run_until_complete(client.aclose())
        loop.close()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

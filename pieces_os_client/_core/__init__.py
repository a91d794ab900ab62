"""The SDK's rules, written once and free of I/O.

Both transports (the urllib3 client, the WebSocket stream, and the asyncio client) call these
modules for every decision that does not move bytes: which headers may go on the wire, how a
URL is shown, which body codings are accepted, how big a body may get, how long an attempt may
take, whether a failed request may be sent again. A transport feeds them what it saw and acts
on the answer; none of them opens a socket, sleeps or reads a clock it was not handed.
"""

"""The idle-latency samples' sender: one webhook at a time over a kept-alive connection.

A sample is "sent" → the run's recorded finish. It used to call `httpx.post`, which builds a new
client, and with it an SSL context (about 27 ms here), after the clock had started: every sample,
ours and n8n's alike, counted that as the system's latency.
"""

from __future__ import annotations

import time

import httpx

_client: httpx.Client | None = None


def post(url: str, body: bytes) -> tuple[float, httpx.Response]:
    """POST a JSON webhook; (wall-clock time it was sent, the answer)."""
    global _client
    if _client is None:
        _client = httpx.Client(timeout=10)
    sent = time.time()
    response = _client.post(url, content=body, headers={"content-type": "application/json"})
    return sent, response

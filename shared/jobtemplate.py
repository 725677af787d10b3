"""The RQ job of a run as RESP bytes, rendered from a template RQ itself produced.

The fast backend of the one enqueue API (`shared.queue.RunEnqueuer.packed`), which ingest sends
raw on its lean Redis connections. `RunEnqueuer.commands()` asks RQ to build the job (≈ 60 to
140 µs of Python per job here: a Job object, its dict, timestamps, the payload). Almost all of
those bytes are the same for every job of a process: the queue, the function, timeouts, TTLs,
retries. At start-up we let RQ build a probe job, keep its commands as a template with slots for
what varies (the run id, the workflow id, the two timestamps and the serialised payload), and
render each job by filling the slots.

The template is trusted only after it proved itself: for a second probe with other ids and an
awkward payload, the rendered commands must equal RQ's byte for byte, except the timestamps
(which must parse as RQ timestamps) and `data`, which must decode to the same job tuple. If an
RQ upgrade changes the layout, that check fails and ingest falls back to asking RQ for every
job, slower but still exact.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from rq.utils import utcformat, utcparse

from shared.flow import Priority
from shared.resp import arguments, bulk, encode, pack

# The queue contract's function (shared.queue.JOB_FUNCTION; not imported: shared.queue uses
# this module). tests/services/ingest/test_jobs.py checks the two agree.
JOB_FUNCTION = "services.worker.jobs.execute_run"
# A RunJob (shared.queue), seen as a mapping so this module needs nothing from the queue.
RunJob = Mapping[str, Any]
Commands = list[tuple[tuple[Any, ...], dict[str, Any]]]


class CommandSource(Protocol):
    """What builds a job's commands with RQ (`shared.queue.RunEnqueuer`)."""

    def commands(self, job: Any, at: datetime | None = None) -> Commands:
        """The Redis commands RQ sends to enqueue `job`."""
        ...


log = logging.getLogger(__name__)

_TIMESTAMP_FIELDS = frozenset({b"created_at", b"enqueued_at"})
_DATA_FIELD = b"data"
_PROBE_RUN = "01900000-0000-7000-8000-0000000a11ce"
_PROBE_WORKFLOW = "01900000-0000-7000-8000-00000000f10e"

# A slot is filled per job from (job, timestamp, serialised payload).
Slot = Callable[[RunJob, bytes, bytes], bytes]
Piece = bytes | Slot


class TemplateMismatch(Exception):
    """The template does not reproduce what RQ writes."""


def serialise(job: RunJob) -> bytes:
    """The job hash's `data`: RQ's job tuple (function, None, args, {}) as compressed JSON.

    RQ's JSON serializer reads it (and `shared.queue.decode_job_data` too); the bytes differ from
    RQ's own only in JSON spacing and escaping: orjson is ~10x faster than the json module.
    """
    try:
        payload = orjson.dumps((JOB_FUNCTION, None, (job,), {}))
    except orjson.JSONEncodeError:
        # orjson nests 254 deep at most; parsed bodies may nest deeper (up to 1024).
        payload = json.dumps((JOB_FUNCTION, None, (job,), {})).encode()
    return _compress(payload)


def _compress(payload: bytes) -> bytes:
    # zlib.compress sets up a 32 KiB window and 128 KiB of hash tables on every call, which
    # costs more than compressing a small payload: size both to the payload instead. The
    # stream stays standard zlib; any reader inflates it with the default window.
    wbits = min(15, max(9, len(payload).bit_length()))
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits, wbits - 7)
    return compressor.compress(payload) + compressor.flush()


def _probe(
    run_id: str, workflow_id: str, body: Any, priority: Priority | None = None
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "run_id": run_id,
        "workflow_id": workflow_id,
        "owner_id": "01900000-0000-7000-8000-000000000000",
        "workflow_version": 1,
        "trigger": {
            "body": body,
            "headers": {"content-type": "application/json"},
            "query": {},
            "method": "POST",
            "received_at": "2026-01-01T00:00:00+00:00",
        },
        "idempotency_key": None,
        "traceparent": None,
        "retry_of": None,
    }
    if priority is not None:
        # The queue follows the job's priority (shared/flow.py): one template per queue.
        job["flow"] = {"priority": priority}
    return job


def _id_slot(text: str) -> Slot:
    # Braces in RQ's text must survive str.format; then the probe ids become placeholders.
    escaped = text.replace("{", "{{").replace("}", "}}")
    pattern = escaped.replace(_PROBE_RUN, "{run}").replace(_PROBE_WORKFLOW, "{workflow}")

    def fill(job: RunJob, _ts: bytes, _data: bytes) -> bytes:
        return bulk(pattern.format(run=job["run_id"], workflow=job["workflow_id"]).encode())

    return fill


def _timestamp_slot(_job: RunJob, ts: bytes, _data: bytes) -> bytes:
    return bulk(ts)


def _data_slot(_job: RunJob, _ts: bytes, data: bytes) -> bytes:
    return bulk(data)


class JobTemplate:
    """Renders a RunJob into RQ's enqueue commands, packed as RESP."""

    def __init__(self, enqueuer: CommandSource, priority: Priority | None = None) -> None:
        self.priority = priority
        probe = _probe(_PROBE_RUN, _PROBE_WORKFLOW, {"probe": True}, priority)
        commands = [args for args, _options in enqueuer.commands(probe)]
        self.count = len(commands)
        self.argument_count = sum(len(args) + 1 for args in commands)
        self._pieces = self._derive(commands, _array_header)
        self._argument_pieces = self._derive(commands, _count_argument)
        self._verify(enqueuer)

    @staticmethod
    def _derive(commands: list[tuple[Any, ...]], header: Callable[[int], bytes]) -> list[Piece]:
        pieces: list[Piece] = []
        for args in commands:
            pieces.append(header(len(args)))
            is_hset = str(args[0]).upper() == "HSET"
            for index, arg in enumerate(args):
                field = encode(args[index - 1]) if is_hset and index >= 3 and index % 2 else None
                if field in _TIMESTAMP_FIELDS:
                    pieces.append(_timestamp_slot)
                elif field == _DATA_FIELD:
                    pieces.append(_data_slot)
                elif isinstance(arg, str) and (_PROBE_RUN in arg or _PROBE_WORKFLOW in arg):
                    pieces.append(_id_slot(arg))
                else:
                    pieces.append(bulk(encode(arg)))
        # Adjacent constants become one piece: rendering then joins a handful of parts.
        merged: list[Piece] = []
        for piece in pieces:
            if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
                merged[-1] += piece
            else:
                merged.append(piece)
        return merged

    def render(self, job: RunJob, now: datetime | None = None) -> bytes:
        """The job's commands as RESP bytes (`count` commands), timestamps from `now`."""
        return self._fill(self._pieces, job, now)

    def render_arguments(self, job: RunJob, now: datetime | None = None) -> bytes:
        """The job's commands as `argument_count` script arguments (shared.resp.arguments)."""
        return self._fill(self._argument_pieces, job, now)

    @staticmethod
    def _fill(pieces: list[Piece], job: RunJob, now: datetime | None) -> bytes:
        ts = utcformat(now or datetime.now(UTC)).encode()
        data = serialise(job)
        return b"".join(
            piece if isinstance(piece, bytes) else piece(job, ts, data) for piece in pieces
        )

    def _verify(self, enqueuer: CommandSource) -> None:
        body = {"text": 'grüße {braces} "quotes" \\ ✓', "n": [1, 2.5, None, True], "e": {}}
        check = _probe("01900000-0000-7000-8000-00000000beef", "0190-{odd}-id", body, self.priority)
        expected = [args for args, _options in enqueuer.commands(check)]
        now = datetime.now(UTC)
        ours = _unpack(self.render(check, now))
        if _unpack_arguments(self.render_arguments(check, now)) != ours:
            raise TemplateMismatch("the script-argument form differs from the RESP form")
        if len(ours) != len(expected):
            raise TemplateMismatch(f"{len(ours)} commands, RQ sends {len(expected)}")
        for mine, theirs in zip(ours, expected, strict=True):
            wanted = [encode(arg) for arg in theirs]
            if len(mine) != len(wanted):
                raise TemplateMismatch(f"{mine[:2]!r}: {len(mine)} arguments, RQ {len(wanted)}")
            for index, (got, want) in enumerate(zip(mine, wanted, strict=True)):
                if got == want:
                    continue
                field = mine[index - 1] if index >= 3 else b""
                if field in _TIMESTAMP_FIELDS and _is_timestamp(got) and _is_timestamp(want):
                    continue
                if field == _DATA_FIELD and _same_payload(got, want):
                    continue
                raise TemplateMismatch(f"{mine[:2]!r} argument {index}: {got!r} != {want!r}")


def _is_timestamp(value: bytes) -> bool:
    try:
        utcparse(value.decode())
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _same_payload(ours: bytes, theirs: bytes) -> bool:
    """Whether RQ's serializer reads the same job tuple from both `data` values."""
    try:
        return bool(json.loads(zlib.decompress(ours)) == json.loads(zlib.decompress(theirs)))
    except (zlib.error, ValueError):
        return False


def _unpack(resp: bytes) -> list[list[bytes]]:
    """Parse our own RESP output back into argument lists (for the start-up check)."""
    commands: list[list[bytes]] = []
    pos = 0
    while pos < len(resp):
        end = resp.index(b"\r\n", pos)
        count = int(resp[pos + 1 : end])
        pos = end + 2
        args = []
        for _ in range(count):
            end = resp.index(b"\r\n", pos)
            size = int(resp[pos + 1 : end])
            args.append(resp[end + 2 : end + 2 + size])
            pos = end + 2 + size + 2
        commands.append(args)
    return commands


def _unpack_arguments(flat: bytes) -> list[list[bytes]]:
    """Parse script arguments (a count, then that many arguments, ...) into argument lists."""
    values: list[bytes] = []
    pos = 0
    while pos < len(flat):
        end = flat.index(b"\r\n", pos)
        size = int(flat[pos + 1 : end])
        values.append(flat[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2
    commands: list[list[bytes]] = []
    index = 0
    while index < len(values):
        count = int(values[index])
        commands.append(values[index + 1 : index + 1 + count])
        index += count + 1
    return commands


def _array_header(count: int) -> bytes:
    return b"*%d\r\n" % count


def _count_argument(count: int) -> bytes:
    return bulk(b"%d" % count)


class RqJobPacker:
    """The fallback: RQ builds every job (exact whatever RQ's layout, several times slower)."""

    def __init__(self, enqueuer: CommandSource) -> None:
        self._enqueuer = enqueuer
        probe = enqueuer.commands(_probe(_PROBE_RUN, _PROBE_WORKFLOW, None))
        self.count = len(probe)
        self.argument_count = sum(len(args) + 1 for args, _options in probe)

    def render(self, job: RunJob, now: datetime | None = None) -> bytes:
        """The job's commands as RESP bytes, built by RQ."""
        return b"".join(pack(*args) for args, _options in self._enqueuer.commands(job))

    def render_arguments(self, job: RunJob, now: datetime | None = None) -> bytes:
        """The job's commands as script arguments, built by RQ."""
        return b"".join(arguments(*args) for args, _options in self._enqueuer.commands(job))


JobPacker = JobTemplate | RqJobPacker


def job_packer(enqueuer: CommandSource, priority: Priority | None = None) -> JobPacker:
    """The template when it reproduces RQ exactly, else the RQ-per-job fallback.

    With `priority`, the template of that priority's queue (jobs then carry that priority).
    """
    try:
        return JobTemplate(enqueuer, priority)
    except TemplateMismatch as exc:
        log.warning("RQ job template does not match RQ; building every job with RQ: %s", exc)
        return RqJobPacker(enqueuer)

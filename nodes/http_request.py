"""`http_request`: call an HTTP API through the SSRF-guarded shared client."""

from __future__ import annotations

import codecs
import email.utils
import json
import time
from typing import Annotated, Any, Literal

import httpx
from opentelemetry import propagate
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.nodes import NodeContext, NodeError, NodeSpec, RetryableNodeError

# Bodies are recorded in the run history and handed to later templates; a cap keeps one large
# download from bloating the worker and the database.
MAX_BODY_BYTES = 1024 * 1024
_EXCERPT_CHARS = 200

Scalar = str | int | float | bool
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class HttpRequestParams(BaseModel):
    """Params of the `http_request` node."""

    # Whole-expression templates keep their type, so `"X-Order": "{{ trigger.body.id }}"` may
    # render to 42; a header or body wants its text rather than a validation failure.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, coerce_numbers_to_str=True)

    method: Method = "GET"
    url: Annotated[str, Field(min_length=1, max_length=8192)]
    headers: dict[str, str] | None = None
    query: dict[str, Scalar | list[Scalar] | None] | None = Field(
        default=None,
        description="query parameters merged into the URL's own (these win on a clash)",
    )
    # Aliased because `json` is a (deprecated) BaseModel method name.
    json_: Any = Field(default=None, alias="json", description="sent as a JSON body")
    body: str | None = Field(default=None, description="sent as a raw body")
    timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    credential: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] | None = Field(
        default=None,
        description=(
            "name of a bearer, basic or header credential: the engine adds it as the request's "
            "Authorization (or named) header; run records show [credential <name>]"
        ),
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"invalid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestParams:
        if "json_" in self.model_fields_set and self.body is not None:
            raise ValueError("json and body are mutually exclusive")
        return self


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the wait a `Retry-After` header asks for, in seconds (delta or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _query_params(query: dict[str, Scalar | list[Scalar] | None]) -> httpx.QueryParams:
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            # JSON spelling of booleans, which is what web APIs expect.
            pairs.append(
                (key, ("true" if item else "false") if isinstance(item, bool) else str(item))
            )
    return httpx.QueryParams(tuple(pairs))


def _describe(request: httpx.Request) -> str:
    # The query string often carries API keys; keep it out of errors stored in run records.
    url = request.url
    return f"{request.method} {url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"


def _decode(content: bytes, response: httpx.Response) -> str:
    encoding = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    return content.decode(encoding, errors="replace")


def _is_json(response: httpx.Response) -> bool:
    media_type = str(response.headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES], True
    return b"".join(chunks), False


async def run(ctx: NodeContext, params: HttpRequestParams) -> dict[str, Any]:
    """Send the request; return `{status, headers, body, truncated}`.

    429 and 5xx raise RetryableNodeError (with `Retry-After`), other 4xx NodeError; network
    errors and timeouts are retryable; refused destinations raise EgressDenied.
    """
    headers = dict(params.headers or {})
    content: bytes | None = None
    if "json_" in params.model_fields_set:
        # Serialised here rather than by httpx so an explicit `"json": null` sends `null`.
        content = json.dumps(params.json_, ensure_ascii=False).encode()
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    elif params.body is not None:
        content = params.body.encode()
    # Continue the run's trace in the called service; a no-op without a configured tracer.
    propagate.inject(headers)
    url = httpx.URL(params.url)
    if params.query:
        # httpx's `params=` would drop the query already in the URL; merge instead.
        url = url.copy_merge_params(_query_params(params.query))
    request = ctx.http.build_request(
        params.method,
        url,
        headers=headers,
        content=content,
        timeout=httpx.Timeout(params.timeout_s) if params.timeout_s else httpx.USE_CLIENT_DEFAULT,
    )
    target = _describe(request)
    try:
        response = await ctx.http.send(request, stream=True)
        try:
            content, truncated = await _read_capped(response)
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        raise RetryableNodeError(f"{target}: timed out ({type(exc).__name__})") from exc
    except httpx.UnsupportedProtocol as exc:
        raise NodeError(f"{target}: {exc}") from exc
    except httpx.TransportError as exc:
        raise RetryableNodeError(f"{target}: {type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError as exc:
        # Too many redirects, undecodable content, invalid URL: retrying would not help.
        raise NodeError(f"{target}: {type(exc).__name__}: {exc}") from exc

    text = _decode(content, response)
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise RetryableNodeError(
            f"{target} answered {status}: {text[:_EXCERPT_CHARS]}", retry_after=retry_after
        )
    if status >= 400:
        raise NodeError(
            f"{target} answered {status} {response.reason_phrase}: {text[:_EXCERPT_CHARS]}"
        )

    body: Any = text
    if not truncated and content and _is_json(response):
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    return {
        "status": status,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "body": body,
        "truncated": truncated,
    }


NODE = NodeSpec(
    type="http_request",
    version=1,
    description=(
        "Send an HTTP request and return {status, headers, body}; JSON bodies are parsed. "
        "Loopback, private and metadata addresses are refused unless allowlisted."
    ),
    params_model=HttpRequestParams,
    run=run,
    effects=True,
)

"""Request and response bodies of the credentials API.

`data` is write-only: no output model has it, and validation errors never echo it (the app's
422 handler drops every rejected input).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from shared.credentials import FIELDS, NAME_PATTERN, CredentialType

# An HTTP field name (RFC 9110 token), for `header` credentials.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
MAX_VALUE_CHARS = 8192

CredentialName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
# A host name or address, or `*.example.com` for its subdomains (not the apex itself).
_HOST_PATTERN = re.compile(
    r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_-]{1,63})*|[0-9a-f:.]+)$"
)


def _host_pattern(value: str) -> str:
    # httpx names an IPv6 host without its brackets: so is it kept.
    host = value.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
    if len(host) > 253 or not _HOST_PATTERN.match(host):
        raise ValueError("must be a host name or address, or *.<domain> for its subdomains")
    return host


HostPattern = Annotated[str, AfterValidator(_host_pattern)]
MAX_ALLOWED_HOSTS = 50
Value = Annotated[str, StringConstraints(min_length=1, max_length=MAX_VALUE_CHARS)]


class CredentialData(BaseModel):
    """The type and its data; every field the type takes is required, no other is allowed."""

    model_config = ConfigDict(extra="forbid")

    type: CredentialType
    # repr=False: a logged or printed model must not carry the values.
    data: dict[str, Value] = Field(repr=False)
    # Where the credential may be sent; a request to any other host fails its step before
    # anything is sent. Absent: any host the egress policy allows.
    allowed_hosts: list[HostPattern] | None = Field(
        default=None, min_length=1, max_length=MAX_ALLOWED_HOSTS
    )

    @model_validator(mode="after")
    def _fields_of_type(self) -> CredentialData:
        wanted = FIELDS[self.type]
        missing = [name for name in wanted if name not in self.data]
        unknown = sorted(set(self.data) - set(wanted))
        if missing or unknown:
            raise ValueError(
                f"a {self.type} credential takes data {{{', '.join(wanted)}}}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        if self.type == "header" and not _HEADER_NAME.match(self.data["name"]):
            raise ValueError("data.name must be an HTTP header name")
        if any("\r" in value or "\n" in value for value in self.data.values()):
            # Header values cannot carry line breaks; a secret pasted with one is a mistake.
            raise ValueError("credential values cannot contain line breaks")
        return self


class CredentialIn(CredentialData):
    """`POST /credentials`."""

    name: CredentialName


class CredentialReplace(CredentialData):
    """`PUT /credentials/{name}`: a new type and data under the same name."""

    name: CredentialName | None = None


class CredentialOut(BaseModel):
    name: str
    type: str
    fields_set: list[str]
    allowed_hosts: list[str] | None = None
    created_at: datetime
    updated_at: datetime


class CredentialList(BaseModel):
    items: list[CredentialOut]

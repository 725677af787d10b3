"""Where the services are and where a user's tokens are kept between commands."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from automateos._models import Tokens

# `make up`'s ports (scripts/devstack.py).
DEFAULT_AUTH_URL = "http://127.0.0.1:8001"
DEFAULT_API_URL = "http://127.0.0.1:8002"
DEFAULT_INGEST_URL = "http://127.0.0.1:8003"


@dataclass(frozen=True)
class Endpoints:
    """The base URLs of the services. Calls go to auth and the workflows API; ingest (which
    webhook URLs point at) is only checked for readiness."""

    auth_url: str = DEFAULT_AUTH_URL
    api_url: str = DEFAULT_API_URL
    ingest_url: str = DEFAULT_INGEST_URL

    @classmethod
    def from_env(
        cls, auth_url: str | None = None, api_url: str | None = None, ingest_url: str | None = None
    ) -> Endpoints:
        """Explicit values first, then `AUTOMATEOS_AUTH_URL` / `AUTOMATEOS_API_URL` /
        `AUTOMATEOS_INGEST_URL`, then `make up`'s addresses."""
        env = os.environ.get
        return cls(
            auth_url=auth_url or env("AUTOMATEOS_AUTH_URL") or DEFAULT_AUTH_URL,
            api_url=api_url or env("AUTOMATEOS_API_URL") or DEFAULT_API_URL,
            ingest_url=ingest_url or env("AUTOMATEOS_INGEST_URL") or DEFAULT_INGEST_URL,
        )

    def services(self) -> dict[str, str]:
        return {"auth": self.auth_url, "workflows": self.api_url, "ingest": self.ingest_url}


class TokenStore(Protocol):
    """Keeps a client's tokens; the client saves every new pair it obtains."""

    def load(self) -> Tokens | None: ...

    def save(self, tokens: Tokens) -> None: ...

    def clear(self) -> None: ...


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/automateos`, else `~/.config/automateos`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "automateos"


class FileTokenStore:
    """Tokens in a JSON file only its owner can read (mode 0600, written atomically)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "tokens.json"

    def load(self) -> Tokens | None:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return Tokens.model_validate(json.loads(raw))
        except ValueError:
            return None  # unreadable: as good as logged out

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp creates the file 0600 from the start: the tokens are never readable by others,
        # not even for the moment between writing and a chmod.
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(tokens.model_dump(mode="json"), file)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class MemoryTokenStore:
    """Tokens for the life of the client only (the default)."""

    def __init__(self, tokens: Tokens | None = None) -> None:
        self._tokens = tokens

    def load(self) -> Tokens | None:
        return self._tokens

    def save(self, tokens: Tokens) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None

"""The AutomateOS Python client (sync and async) and the `automateos` command line.

```python
from automateos import Client

with Client() as client:  # AUTOMATEOS_AUTH_URL / AUTOMATEOS_API_URL, else `make up`'s
    client.login("ada@example.com", "correct horse battery")
    for workflow in client.iter_workflows():
        print(workflow.name, workflow.version)
```
"""

from automateos._async_client import AsyncClient
from automateos._client import Client
from automateos._config import Endpoints, FileTokenStore, MemoryTokenStore, TokenStore
from automateos._errors import (
    APIError,
    AuthenticationError,
    AutomateOSError,
    ConflictError,
    Issue,
    NotFoundError,
    NotLoggedIn,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    ValidationError,
    WaitTimeout,
)
from automateos._models import (
    TERMINAL_STATUSES,
    Credential,
    Page,
    Run,
    RunAccepted,
    RunSummary,
    Step,
    Tokens,
    User,
    Workflow,
)

__all__ = [
    "TERMINAL_STATUSES",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "AutomateOSError",
    "Client",
    "ConflictError",
    "Credential",
    "Endpoints",
    "FileTokenStore",
    "Issue",
    "MemoryTokenStore",
    "NotFoundError",
    "NotLoggedIn",
    "Page",
    "PermissionDenied",
    "RateLimited",
    "Run",
    "RunAccepted",
    "RunSummary",
    "ServerError",
    "Step",
    "TokenStore",
    "Tokens",
    "TransportError",
    "User",
    "ValidationError",
    "WaitTimeout",
    "Workflow",
]

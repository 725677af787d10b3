"""A tiny HTTP server for the README walkthrough: prints every request and echoes it as JSON.

Standard library only, so it runs with any python3: `python3 scripts/echo_server.py 9000`.
Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    def _echo(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        # The walkthrough's credential arrives as this header: show that it did.
        auth = self.headers.get("authorization")
        print(f"{self.command} {self.path} {body}" + (f"  [{auth}]" if auth else ""), flush=True)
        answer = json.dumps({"method": self.command, "path": self.path, "body": body}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass  # _echo prints a more useful line


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"echo server on http://127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), EchoHandler).serve_forever()


if __name__ == "__main__":
    main()

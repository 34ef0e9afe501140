"""moto's Route 53 server behind a fault-injecting WSGI layer, for failoverd's tests.

Usage: python3 moto_fault.py [PORT]   (default 0: any free port)

Prints "listening on 127.0.0.1:PORT" once the socket is bound, then serves moto's
whole API (including /moto-api/reset) plus one control endpoint:

  POST /__fault?code=CODE&count=N[&match=TEXT]
      The next N Route 53 API requests fail with CODE instead of reaching moto:
        Throttling, PriorRequestNotComplete  any request (HTTP 400, "Rate exceeded")
        InvalidClientTokenId                 any request (HTTP 403: rejected credentials,
                                             which moto does not check)
        InvalidChangeBatch                   ChangeResourceRecordSets only; with
                                             match=TEXT only requests whose body
                                             contains TEXT (the whole batch is
                                             rejected atomically, as Route 53 does)
        PENDING                              ChangeResourceRecordSets and GetChange
                                             answers report Status PENDING instead
                                             of INSYNC (moto is always INSYNC)
      count=0 clears that code. Faults of different codes are independent.
  GET /__fault  returns counters: "CODE injected=N remaining=M" per line.

Everything not faulted is passed to moto unchanged. moto state is reset with
POST /moto-api/reset as usual; faults are reset with POST /__fault?code=all&count=0.
"""

import io
import sys
import threading
import uuid
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

API_PREFIX = "/2013-04-01/"
ERROR_TEMPLATE = (
    '<?xml version="1.0"?>\n'
    '<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
    "<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
    "<RequestId>{request_id}</RequestId></ErrorResponse>"
)
MESSAGES = {
    "Throttling": "Rate exceeded",
    "PriorRequestNotComplete": "The request was rejected because Route 53 was still processing a prior request.",
    "InvalidChangeBatch": "[Injected by moto_fault.py] change batch rejected",
    "InvalidClientTokenId": "The security token included in the request is invalid.",
}
CODES = ("Throttling", "PriorRequestNotComplete", "InvalidChangeBatch", "PENDING", "InvalidClientTokenId")


class Faults:
    """Pending faults per code: remaining count, optional body match, and counters."""

    def __init__(self):
        self.lock = threading.Lock()
        self.remaining = {code: 0 for code in CODES}
        self.match = {code: None for code in CODES}
        self.injected = {code: 0 for code in CODES}

    def arm(self, code, count, match):
        with self.lock:
            codes = CODES if code == "all" else (code,)
            for c in codes:
                self.remaining[c] = count
                self.match[c] = match

    def take(self, code, body=None):
        """Consumes one fault of `code` if armed (and the body matches)."""
        with self.lock:
            if self.remaining[code] <= 0:
                return False
            match = self.match[code]
            if match is not None and (body is None or match.encode() not in body):
                return False
            self.remaining[code] -= 1
            self.injected[code] += 1
            return True

    def report(self):
        with self.lock:
            return "".join(
                f"{c} injected={self.injected[c]} remaining={self.remaining[c]}\n" for c in CODES
            )


def respond(start_response, status, body, content_type="text/xml"):
    data = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def read_body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length else b""
    # Hand the body on to moto unchanged.
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class FaultMiddleware:
    def __init__(self, app):
        self.app = app
        self.faults = Faults()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/__fault":
            if method == "GET":
                return respond(start_response, "200 OK", self.faults.report(), "text/plain")
            query = parse_qs(environ.get("QUERY_STRING", ""))
            code = query.get("code", [""])[0]
            if code != "all" and code not in CODES:
                return respond(start_response, "400 Bad Request", f"unknown code {code!r}\n", "text/plain")
            count = int(query.get("count", ["1"])[0])
            match = query.get("match", [None])[0]
            self.faults.arm(code, count, match)
            return respond(start_response, "200 OK", "armed\n", "text/plain")
        if not path.startswith(API_PREFIX):
            return self.app(environ, start_response)
        is_change = method == "POST" and path.rstrip("/").endswith("/rrset")
        is_get_change = method == "GET" and "/change/" in path
        body = read_body(environ) if is_change else None
        request_id = str(uuid.uuid4())
        if self.faults.take("InvalidClientTokenId"):
            code = "InvalidClientTokenId"
            return respond(
                start_response,
                "403 Forbidden",
                ERROR_TEMPLATE.format(code=code, message=MESSAGES[code], request_id=request_id),
            )
        for code in ("Throttling", "PriorRequestNotComplete"):
            if self.faults.take(code):
                return respond(
                    start_response,
                    "400 Bad Request",
                    ERROR_TEMPLATE.format(code=code, message=MESSAGES[code], request_id=request_id),
                )
        if is_change and self.faults.take("InvalidChangeBatch", body):
            code = "InvalidChangeBatch"
            return respond(
                start_response,
                "400 Bad Request",
                ERROR_TEMPLATE.format(code=code, message=MESSAGES[code], request_id=request_id),
            )
        if (is_change or is_get_change) and self.faults.take("PENDING"):
            return self.pending(environ, start_response)
        return self.app(environ, start_response)

    def pending(self, environ, start_response):
        """Runs moto and rewrites the change status of its answer to PENDING."""
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        body = body.replace(b"<Status>INSYNC</Status>", b"<Status>PENDING</Status>")
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    app = FaultMiddleware(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""The local front door: API Gateway HTTP API behaviour in front of the real handlers.

For each request it does what the deployed API does, from the same routes
and CORS configuration AnalyticsApi deploys: selects the route with
handlers.shared.api_gateway (the model of API Gateway's route selection and
CORS; unknown paths go to the authorized `$default` route, browsers'
preflights to the unauthenticated `OPTIONS /{proxy+}` route), runs the real
authorizer on routes that have it (missing header: 401, denied: 403, as API
Gateway answers, with its 300 s result cache), builds the payload 2.0 event
with the authorizer's context, invokes the handler in process, maps its
response (status, headers, base64 bodies) back and puts the configured CORS
headers on it in place of the handler's.

Its own answers (API Gateway's errors, the local routes) carry
`X-Content-Type-Options: nosniff`, as the handlers' do. It serves each
connection on a thread of its own, with a listen backlog of 128, so a crowd
of clients opening new connections is not dropped by the kernel.

Local-only extras, never deployed: `GET /openapi.yaml` and `/openapi.json`
(the API description), `GET /_local/health`, and the routes in
`local.actions` (`POST /_local/report-engine/run`, `GET /_local/emails`).
"""

from __future__ import annotations

import base64
import errno
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from components.functions import ANALYTICS_FUNCTIONS
from handlers.shared import api_gateway
from handlers.shared.api_gateway import CorsConfiguration, GatewayAnswer
from handlers.shared.http import NOSNIFF, ApiError
from handlers.shared.routes import DEPLOYED_ROUTES, Route
from local.config import ACCOUNT_ID, ENVIRONMENT

logger = logging.getLogger(__name__)

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "handlers" / "openapi.yaml"
API_ID = "local"
AUTHORIZER_CACHE_SECONDS = 300
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# Connections the kernel queues until they are accepted (socketserver's default is 5).
LISTEN_BACKLOG = 128

FUNCTIONS = {spec.key: spec for spec in ANALYTICS_FUNCTIONS}

# A local-only route: the query parameters in, a JSON-able body out; raises
# ApiError for a bad parameter.
LocalAction = Callable[[Mapping[str, str]], Any]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers may read."""

    function_name: str
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = ""
    _deadline: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{self.function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def invoke(function: str, event: Mapping[str, Any]) -> Any:
    """Calls a handler in this process, as Lambda would, with its deployed timeout."""
    spec = FUNCTIONS[function]
    module = importlib.import_module(spec.module)
    context = LambdaContext(
        function_name=spec.function_name(f"securebase-{ENVIRONMENT}"),
        timeout_seconds=spec.timeout_seconds,
        memory_limit_in_mb=spec.memory_mb,
    )
    return module.handler(dict(event), context)


class AuthorizerCache:
    """API Gateway caches an authorizer's answer per identity source value."""

    def __init__(
        self,
        ttl_seconds: float = AUTHORIZER_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry and entry[0] > self._clock():
                return entry[1]
            self._entries.pop(key, None)
            return None

    def put(self, key: str, decision: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, decision)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    raw_query: str
    headers: Mapping[str, str]  # lower-case names, repeated values joined with ","
    body: bytes
    source_ip: str


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


def gateway_error(status: int, message: str) -> HttpResponse:
    """API Gateway's own error responses, e.g. `{"message":"Unauthorized"}`."""
    return json_answer(status, {"message": message})


def json_answer(status: int, body: Any) -> HttpResponse:
    return own_answer(
        status, {"Content-Type": "application/json"}, json.dumps(body, default=str).encode()
    )


def own_answer(status: int, headers: Mapping[str, str], body: bytes) -> HttpResponse:
    """A response the front door makes itself rather than a handler."""
    return HttpResponse(status, {**headers, **NOSNIFF}, body)


def query_parameters(raw_query: str) -> dict[str, str]:
    """`queryStringParameters` as API Gateway builds them: repeated names joined with ","."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    return query


class FrontDoor:
    """Routes a request through the authorizer to a handler, as the deployed API does."""

    def __init__(
        self,
        cors: CorsConfiguration,
        local_actions: Mapping[str, LocalAction] | None = None,
        routes: tuple[Route, ...] = DEPLOYED_ROUTES,
    ):
        self.cors = cors
        self.routes = routes
        self.local_actions = dict(local_actions or {})
        self.authorizer_cache = AuthorizerCache()

    def handle(self, request: HttpRequest) -> HttpResponse:
        local = self._local(request)
        if local is not None:
            return local
        selected = api_gateway.select(
            self.routes, self.cors, request.method, request.path, request.headers
        )
        if isinstance(selected, GatewayAnswer):
            return own_answer(selected.status, selected.headers, selected.body)
        route_key, path_parameters = selected.route.key, selected.path_parameters

        authorizer_context: Mapping[str, Any] | None = None
        if selected.needs_authorizer:
            authorization = request.headers.get("authorization", "")
            if not authorization:
                return gateway_error(401, "Unauthorized")
            decision = self.authorizer_cache.get(authorization)
            if decision is None:
                event = self._event(request, route_key, path_parameters, authorizer_context=None)
                try:
                    decision = invoke(
                        "authorizer",
                        {**event, "type": "REQUEST", "identitySource": [authorization]},
                    )
                except Exception:
                    logger.exception("authorizer failed")
                    return gateway_error(500, "Internal Server Error")
                self.authorizer_cache.put(authorization, decision)
            if not decision.get("isAuthorized"):
                return gateway_error(403, "Forbidden")
            authorizer_context = decision.get("context") or {}

        event = self._event(request, route_key, path_parameters, authorizer_context)
        function = selected.route.function
        try:
            result = invoke(function, event)
        except Exception:
            logger.exception("handler %s failed", function)
            return gateway_error(500, "Internal Server Error")
        response = self._map_response(result)
        headers = api_gateway.integration_response_headers(
            self.cors, request.method, request.headers, response.headers
        )
        return HttpResponse(response.status, headers, response.body)

    def _local(self, request: HttpRequest) -> HttpResponse | None:
        if request.method == "GET" and request.path in ("/openapi.yaml", "/openapi.json"):
            import yaml

            document = yaml.safe_load(OPENAPI_PATH.read_text())
            if request.path.endswith(".json"):
                return json_answer(200, document)
            return own_answer(200, {"Content-Type": "application/yaml"}, OPENAPI_PATH.read_bytes())
        if request.method == "GET" and request.path == "/_local/health":
            return json_answer(200, {"status": "ok"})
        action = self.local_actions.get(f"{request.method} {request.path}")
        if action is None:
            return None
        try:
            return json_answer(200, action(query_parameters(request.raw_query)))
        except ApiError as error:
            return json_answer(error.status, {"error": error.message, "code": error.code})

    def _event(
        self,
        request: HttpRequest,
        route_key: str,
        path_parameters: Mapping[str, str],
        authorizer_context: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        now = time.time()
        query = query_parameters(request.raw_query)
        text_body: str | None = None
        is_base64 = False
        if request.body:
            try:
                text_body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                text_body, is_base64 = base64.b64encode(request.body).decode(), True
        context: dict[str, Any] = {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": request.headers.get("host", "127.0.0.1"),
            "domainPrefix": API_ID,
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": request.headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        }
        if authorizer_context is not None:
            context["authorizer"] = {"lambda": dict(authorizer_context)}
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.raw_query,
            "headers": dict(request.headers),
            "requestContext": context,
            "isBase64Encoded": is_base64,
        }
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = dict(path_parameters)
        if text_body is not None:
            event["body"] = text_body
        return event

    def _map_response(self, result: Any) -> HttpResponse:
        """Payload 2.0: a dict with statusCode is a full response, anything else a 200 JSON body."""
        if not (isinstance(result, dict) and "statusCode" in result):
            return HttpResponse(
                200, {"Content-Type": "application/json"}, json.dumps(result, default=str).encode()
            )
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        body = result.get("body") or ""
        data = (
            base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
        )
        return HttpResponse(int(result["statusCode"]), headers, data)


class PortInUse(Exception):
    """Another process listens on the port."""

    def __init__(self, port: int):
        super().__init__(f"port {port} is in use")
        self.port = port


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "securebase-local"
    # The headers and the body go out as two writes: with Nagle's algorithm the
    # body would wait for the client's delayed ACK (40 ms on Linux) on every
    # keep-alive response.
    disable_nagle_algorithm = True
    server: FrontDoorServer

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        raw_length = self.headers.get("Content-Length") or "0"
        length = int(raw_length) if raw_length.isascii() and raw_length.isdigit() else -1
        if length < 0:
            response = gateway_error(400, "Bad Request")
            self.close_connection = True  # the body's end is unknown
        elif length > MAX_BODY_BYTES:
            response = gateway_error(413, "Request Entity Too Large")
            self.rfile.read(length)
        else:
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            request = HttpRequest(
                method=self.command,
                path=parts.path,
                raw_query=parts.query,
                headers=headers,
                body=self.rfile.read(length) if length else b"",
                source_ip=self.client_address[0],
            )
            response = self.server.front_door.handle(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def __getattr__(self, name: str) -> Any:
        # Every method (TRACE, PROPFIND, ...) goes through the routes, so one
        # the API does not serve reaches `$default` and its JSON 404, not
        # http.server's HTML 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class FrontDoorServer(ThreadingHTTPServer):
    """HTTP/1.1 on 127.0.0.1, a thread per connection; `front_door` answers the requests."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    front_door: FrontDoor


def listen(port: int) -> FrontDoorServer:
    """Listens on 127.0.0.1:port (0: any free port), not yet serving: attach a front door,
    then `serve_forever`. Raises PortInUse when another process has the port."""
    try:
        return FrontDoorServer(("127.0.0.1", port), _Handler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(port) from None
        raise


def serve(front_door: FrontDoor, port: int) -> FrontDoorServer:
    """A server for `front_door` on 127.0.0.1:port (0: any free port), not yet serving."""
    server = listen(port)
    server.front_door = front_door
    return server

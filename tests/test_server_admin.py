"""The admin guard: loopback is judged from the connection's own address, forwarding headers cannot forge
it, a token (when set) is required from every client, and probes need nothing."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fleetplane.server import AdminGuard, bearer_token, is_loopback

pytestmark = pytest.mark.anyio


async def _ok(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


INNER = Starlette(
    routes=[
        Route("/admin/gateway/config", _ok),
        Route("/admin/health", _ok),
        Route("/admin/ready", _ok),
        Route("/v1/models", _ok),
    ]
)


async def status(
    token: str | None,
    path: str = "/admin/gateway/config",
    *,
    client: str = "127.0.0.1",
    headers: dict[str, str] | list[tuple[bytes, bytes]] | None = None,
) -> int:
    transport = httpx.ASGITransport(app=AdminGuard(INNER, token), client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        return (await http.get(path, headers=headers)).status_code


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", False),
        ("10.0.0.1", False),
        ("192.0.2.2", False),
        ("2001:db8::1", False),
        ("localhost", False),  # a name, not a peer address
        ("", False),
        (None, False),
    ],
)
def test_loopback_is_an_address_check(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


async def test_without_a_token_loopback_clients_get_in_and_others_do_not() -> None:
    assert await status(None, client="127.0.0.1") == 200
    assert await status(None, client="::1") == 200
    assert await status(None, client="::ffff:127.0.0.1") == 200
    assert await status(None, client="192.0.2.2") == 403
    assert await status(None, client="::ffff:192.0.2.2") == 403


async def test_a_forwarded_for_header_never_makes_a_client_loopback() -> None:
    spoof = {"x-forwarded-for": "127.0.0.1"}
    assert await status(None, client="192.0.2.2", headers=spoof) == 403
    # Even from a loopback peer: that peer is a proxy on this host relaying someone else.
    assert await status(None, client="127.0.0.1", headers=spoof) == 403
    assert await status(None, client="127.0.0.1", headers={"forwarded": "for=127.0.0.1"}) == 403


async def test_with_a_token_every_client_must_present_it() -> None:
    assert await status("s3cret", client="127.0.0.1") == 403
    assert await status("s3cret", client="127.0.0.1", headers={"authorization": "Bearer s3cret"}) == 200
    assert await status("s3cret", client="192.0.2.2", headers={"authorization": "Bearer s3cret"}) == 200
    assert await status("s3cret", client="192.0.2.2", headers={"authorization": "Bearer wrong"}) == 403
    assert await status("s3cret", client="192.0.2.2", headers={"authorization": "s3cret"}) == 403
    assert await status("s3cret", client="192.0.2.2", headers={"authorization": "Basic s3cret"}) == 403


async def test_the_bearer_scheme_is_case_insensitive() -> None:
    for scheme in ("bearer", "BEARER", "BeArEr"):
        assert await status("s3cret", headers={"authorization": f"{scheme} s3cret"}) == 200


async def test_a_non_ascii_token_is_refused_not_a_crash() -> None:
    raw = [(b"authorization", "Bearer \xe9t\xe9".encode("latin-1"))]
    assert await status("s3cret", headers=raw) == 403
    utf8 = [(b"authorization", "Bearer été".encode())]
    assert await status("s3cret", headers=utf8) == 403


async def test_a_non_ascii_admin_token_matches_its_utf8_bytes() -> None:
    assert await status("sécret", headers=[(b"authorization", "Bearer sécret".encode())]) == 200
    assert await status("sécret", headers=[(b"authorization", b"Bearer s\xe9cret")]) == 403


async def test_probes_need_neither_loopback_nor_token() -> None:
    for path in ("/admin/health", "/admin/ready"):
        assert await status("s3cret", path, client="192.0.2.2") == 200
        assert await status(None, path, client="192.0.2.2") == 200


async def test_the_refusal_says_what_is_needed() -> None:
    transport = httpx.ASGITransport(app=AdminGuard(INNER, None), client=("192.0.2.2", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.get("/admin/gateway/config")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert "loopback" in response.json()["error"]["message"]


async def test_the_rest_of_the_api_is_not_guarded() -> None:
    assert await status("s3cret", "/v1/models", client="192.0.2.2") == 200


def test_bearer_token_parsing() -> None:
    assert bearer_token([(b"authorization", b"Bearer  abc ")]) == b"abc"
    assert bearer_token([(b"authorization", b"Bearer")]) is None
    assert bearer_token([(b"authorization", b"Token abc")]) is None
    assert bearer_token([]) is None


@pytest.fixture
def uvicorn_trusting_every_proxy() -> Iterator[str]:
    """A real server as a container image might run it: proxy headers honoured from anyone."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        AdminGuard(INNER, None), log_level="critical", proxy_headers=True, forwarded_allow_ips="*"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_rewritten_peer_address_does_not_open_the_admin_api(uvicorn_trusting_every_proxy: str) -> None:
    # uvicorn rewrites the client to the header's address; the header itself still marks the relay.
    url = uvicorn_trusting_every_proxy + "/admin/gateway/config"
    assert httpx.get(url, headers={"x-forwarded-for": "127.0.0.1"}).status_code == 403
    assert httpx.get(url).status_code == 200

"""`portcullis demo` driven by the official MCP Python SDK (PyPI `mcp`, pinned in requirements.txt),
as an MCP host would use it: `mcp.Client` over streamable HTTP with the SDK's own
`mcp.client.auth.OAuthClientProvider` as the httpx2 auth. The host supplies only what a host must:
token storage in memory, a redirect handler that plays the user's browser (single sign-on as vera
through the demo's identity provider, then the consent page) and a callback handler that hands the
code back. Everything else is the SDK's: from the MCP server's 401 it finds the resource metadata
(RFC 9728) and the authorization server (RFC 8414), registers (RFC 7591), runs the code flow with
PKCE S256 and the RFC 8707 `resource`, and retries with the token; then it negotiates revision
2026-07-28 with `server/discover`.

Then what the tools answer reaches the SDK's caller as it should: vera (a Viewer, by her group at
the identity provider) sees her two tools, lookup_customer is allowed, list_events asks her to
connect her calendar (as text: the client declares no URL elicitation) and is allowed once she has,
and create_event is denied by the policies.

A user signed in with a password has no roles, so the sign-in goes through SSO.

Run by scripts/mcp-python-check; PORTCULLIS_BIN names the binary (default: target/debug/portcullis).
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REVISION = "2026-07-28"
# The client's redirect URI: nothing listens there, the browser reads `Location`.
REDIRECT = "http://127.0.0.1:4242/callback"
# What the MCP server advertises, and so what the SDK asks for.
ALL_SCOPES = ["calendar.read", "calendar.write", "crm.read", "outbound.token.fetch"]
PERSON = "vera"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ----- The demo -----------------------------------------------------------------------------------


@dataclass
class Demo:
    portcullis: str
    mcp: str
    identity_provider: str
    sso_connection: str
    admin_key: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    def logs(self, lines: int = 80) -> str:
        text = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def portcullis_bin() -> str:
    explicit = os.environ.get("PORTCULLIS_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path(__file__).resolve().parents[2] / "target")
    return str(Path(target).resolve() / "debug" / "portcullis")


@pytest.fixture(scope="module")
def demo() -> Any:
    binary = portcullis_bin()
    assert os.access(binary, os.X_OK), f"no portcullis binary at {binary} (build it, or set PORTCULLIS_BIN)"
    # The caller's own PORTCULLIS_* settings must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    tmp = Path(tempfile.mkdtemp(prefix="portcullis-mcp-python-"))
    stderr_path = tmp / "demo.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [binary, "demo", "--listen", "127.0.0.1:0", "--mcp-listen", "127.0.0.1:0", "--no-story", "--output", "json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    assert process.stdout is not None
    logs = lambda: stderr_path.read_text(errors="replace")  # noqa: E731
    try:
        # One line of JSON when ready; anything else (an exit, silence) fails with the demo's stderr.
        line = b""
        deadline = time.monotonic() + 60
        while not line.endswith(b"\n"):
            if process.poll() is not None:
                pytest.fail(f"portcullis demo exited ({process.returncode}) before it was ready:\n{logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"portcullis demo was not ready within 60 s:\n{logs()}")
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk and process.wait(timeout=5) is not None:
                    pytest.fail(f"portcullis demo exited ({process.returncode}) before it was ready:\n{logs()}")
                line += chunk
        info = json.loads(line)
        yield Demo(
            portcullis=info["portcullis"],
            mcp=info["mcp"],
            identity_provider=info["identityProvider"],
            sso_connection=info["ssoConnection"],
            admin_key=info["adminKey"],
            process=process,
            stderr_path=stderr_path,
        )
    finally:
        early = process.poll()
        if early is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if os.environ.get("PORTCULLIS_TEST_SHOW_LOGS"):
            print(f"--- portcullis demo logs\n{logs()}")
        text = logs()
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    assert early is None, f"portcullis demo exited ({early}) during the tests:\n{text}"
    assert process.returncode == 0, f"portcullis demo exits 0 on SIGTERM, not {process.returncode}:\n{text}"
    assert "panicked" not in text, f"portcullis demo panicked:\n{text}"


def assert_alive(demo: Demo) -> None:
    if demo.process.poll() is not None:
        pytest.fail(f"portcullis demo exited ({demo.process.returncode}):\n{demo.logs()}")


# ----- The user's browser -------------------------------------------------------------------------


@dataclass
class Page:
    url: str
    status: int
    location: str | None
    html: str

    def field(self, name: str) -> str:
        m = re.search(rf'name="{name}" value="([^"]*)"', self.html)
        assert m, f"no field {name!r} on the page at {self.url} ({self.status}):\n{self.html}"
        return m.group(1).replace("&amp;", "&")


class Browser:
    """One cookie jar (every host is 127.0.0.1), no automatic redirects."""

    def __init__(self) -> None:
        self.cookies = httpx2.Cookies()

    async def go(self, url: str, form: dict[str, str] | None = None) -> Page:
        async with httpx2.AsyncClient(follow_redirects=False, cookies=self.cookies, timeout=30) as http:
            if form is None:
                resp = await http.get(url)
            else:
                resp = await http.post(url, data=form)
            # Keep what the server set for the next visit (the client's jar is a copy).
            self.cookies = httpx2.Cookies(http.cookies)
        return Page(url=url, status=resp.status_code, location=resp.headers.get("location"), html=resp.text)


async def authorize_in_browser(browser: Browser, demo: Demo, person: str, authorization_url: str) -> str:
    """The user through Portcullis's authorization endpoint: SSO as `person` at the demo's identity
    provider (when not signed in yet), the consent page (when asked). Returns the redirect back to
    the client."""
    page = await browser.go(authorization_url)
    if page.status == 200 and 'action="/oauth2/sso/start"' in page.html:
        start = await browser.go(
            f"{demo.portcullis}/oauth2/sso/start",
            {"request": page.field("request"), "csrf": page.field("csrf"), "connection": demo.sso_connection},
        )
        assert start.status == 303, f"sso/start: {start.status}\n{start.html}"
        assert start.location and start.location.startswith(f"{demo.identity_provider}/authorize?"), start.location
        idp = await browser.go(start.location)
        assert idp.status == 200, f"the identity provider's page: {idp.status}\n{idp.html}"
        back = await browser.go(f"{demo.identity_provider}/authorize/as", {"flow": idp.field("flow"), "person": person})
        assert back.status == 303, f"the identity provider's answer: {back.status}\n{back.html}"
        assert back.location and back.location.startswith(f"{demo.portcullis}/oauth2/sso/callback?"), back.location
        page = await browser.go(back.location)
    if page.status == 200 and 'name="action" value="allow"' in page.html:
        page = await browser.go(
            f"{demo.portcullis}/oauth2/authorize",
            {"request": page.field("request"), "csrf": page.field("csrf"), "action": "allow"},
        )
    assert page.status == 303, f"the authorization ends in a redirect to the client ({page.url}): {page.status}\n{page.html}"
    assert page.location and page.location.startswith(f"{REDIRECT}?"), page.location
    return page.location


async def connect_in_browser(browser: Browser, demo: Demo, link: str) -> Page:
    """A connect link opened in the browser signed in to Portcullis: the link's page, "Continue",
    the calendar provider (which redirects back at once), Portcullis's callback."""
    assert link.startswith(f"{demo.portcullis}/"), f"a link of Portcullis: {link}"
    page = await browser.go(link)
    assert page.status == 200, f"the connect page: {page.status}\n{page.html}"
    go = await browser.go(link, {"action": "continue", "csrf": page.field("csrf")})
    assert go.status == 303 and go.location, f"continue: {go.status}\n{go.html}"
    provider = await browser.go(go.location)
    assert provider.status in (302, 303) and provider.location, f"the provider redirects back: {provider.status}\n{provider.html}"
    assert provider.location.startswith(f"{demo.portcullis}/"), provider.location
    done = await browser.go(provider.location)
    assert done.status == 200, f"Portcullis's callback shows the outcome: {done.status}\n{done.html}"
    return done


# ----- The host (what the SDK asks of it) ---------------------------------------------------------


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Wire:
    method: str
    url: str
    body: str
    status: int
    www_authenticate: str | None


@dataclass
class Host:
    """What one MCP host keeps across connections: storage, the user's browser, and records of
    every authorization URL the SDK sent the user to, every redirect back, every HTTP exchange."""

    demo: Demo
    person: str
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    browser: Browser = field(default_factory=Browser)
    authorizations: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    wire: list[Wire] = field(default_factory=list)

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorizations.append(authorization_url)
        self.callbacks.append(await authorize_in_browser(self.browser, self.demo, self.person, authorization_url))

    async def callback_handler(self) -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(self.callbacks[-1]).query)
        one = lambda k: query[k][0] if k in query else None  # noqa: E731
        code = one("code")
        assert code, f"no code in the redirect back: {self.callbacks[-1]}"
        # The SDK checks `state` and the RFC 9207 `iss` itself.
        return AuthorizationCodeResult(code=code, state=one("state"), iss=one("iss"))

    def provider(self) -> OAuthClientProvider:
        return OAuthClientProvider(
            server_url=self.demo.mcp,
            client_metadata=OAuthClientMetadata(
                client_name=f"MCP Python SDK host ({self.person})",
                redirect_uris=[REDIRECT],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=self.storage,
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
        )

    async def record(self, response: httpx2.Response) -> None:
        request = response.request
        body = request.content.decode(errors="replace") if request.content else ""
        self.wire.append(
            Wire(request.method, str(request.url), body, response.status_code, response.headers.get("www-authenticate"))
        )

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Client]:
        """An SDK client on the demo's MCP server, signing in through the SDK's OAuth as needed.
        A failure of the SDK (not an assertion of the test) is reported with the last HTTP
        exchanges, which say more than the SDK's error."""
        assert_alive(self.demo)
        seen = len(self.wire)
        try:
            async with httpx2.AsyncClient(
                auth=self.provider(), event_hooks={"response": [self.record]}, timeout=httpx2.Timeout(30, read=60)
            ) as http:
                async with Client(streamable_http_client(self.demo.mcp, http_client=http), mode="auto") as client:
                    yield client
        except Exception as e:
            errors = leaves(e)
            if all(isinstance(x, AssertionError) for x in errors):
                raise errors[0] from None
            exchanges = "\n".join(
                f"  {w.method} {w.url.split('?')[0]} -> {w.status}"
                + (f" (WWW-Authenticate: {w.www_authenticate})" if w.www_authenticate else "")
                for w in self.wire[seen:][-12:]
            )
            what = "; ".join(f"{type(x).__name__}: {x}" for x in errors)
            raise AssertionError(f"the MCP client failed ({what}); its last HTTP exchanges:\n{exchanges}") from e


def leaves(e: BaseException) -> list[BaseException]:
    """The exceptions in an exception group (anyio's task groups wrap what they raise)."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for x in e.exceptions for leaf in leaves(x)]
    return [e]


@pytest.fixture(scope="module")
def vera(demo: Demo) -> Host:
    return Host(demo=demo, person=PERSON)


@pytest.fixture(scope="module")
def metadata(demo: Demo) -> dict[str, Any]:
    return httpx2.get(f"{demo.portcullis}/.well-known/oauth-authorization-server").json()


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def scopes(s: str | None) -> list[str]:
    return sorted((s or "").split())


def jwt_claims(token: str, demo: Demo, metadata: dict[str, Any]) -> dict[str, Any]:
    """The access token's claims, its signature checked against Portcullis's keys."""
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key, algorithms=[header["alg"]], audience=demo.mcp, issuer=metadata["issuer"])
    return claims


# ----- The tests ----------------------------------------------------------------------------------


async def test_sdk_oauth_discovers_registers_and_signs_in(demo: Demo, vera: Host, metadata: dict[str, Any]) -> None:
    async with vera.connect() as client:
        # Revision 2026-07-28 through server/discover, not the legacy initialize fallback.
        assert client.protocol_version == REVISION
        assert client.session._discover_result is not None, "negotiated by server/discover"  # noqa: SLF001

    # From the 401 the SDK found the resource metadata, then the authorization server's.
    first = vera.wire[0]
    assert (first.url, first.status) == (demo.mcp, 401), first
    assert first.www_authenticate and first.www_authenticate.startswith("Bearer "), first
    prm = f"{urlsplit(demo.mcp).scheme}://{urlsplit(demo.mcp).netloc}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{prm}"' in first.www_authenticate, first.www_authenticate
    urls = [(w.method, w.url.split("?")[0], w.status) for w in vera.wire]
    assert ("GET", prm, 200) in urls, urls
    assert ("GET", f"{demo.portcullis}/.well-known/oauth-authorization-server", 200) in urls, urls

    # Dynamic client registration (no client ID metadata document: the SDK takes only https ones).
    registrations = [w for w in vera.wire if w.url == metadata["registration_endpoint"]]
    assert [r.status for r in registrations] == [201], registrations
    registered = json.loads(registrations[0].body)
    assert registered["redirect_uris"] == [REDIRECT]
    assert registered["token_endpoint_auth_method"] == "none"
    client_id = vera.storage.client_info.client_id if vera.storage.client_info else None
    assert client_id and client_id.startswith("dyn_"), client_id

    # The code flow: PKCE S256, the resource (RFC 8707), every scope the resource advertises.
    assert len(vera.authorizations) == 1, vera.authorizations
    auth = urlsplit(vera.authorizations[0])
    params = {k: v[0] for k, v in parse_qs(auth.query).items()}
    assert f"{auth.scheme}://{auth.netloc}{auth.path}" == metadata["authorization_endpoint"]
    assert params["response_type"] == "code"
    assert params["client_id"] == client_id
    assert params["redirect_uri"] == REDIRECT
    assert params["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"]), params
    assert params["resource"] == demo.mcp
    assert scopes(params.get("scope")) == ALL_SCOPES, params
    # RFC 9207: the redirect names the issuer (the SDK checked it).
    back = {k: v[0] for k, v in parse_qs(urlsplit(vera.callbacks[0]).query).items()}
    assert back.get("iss") == demo.portcullis, vera.callbacks[0]
    assert back.get("state") == params["state"]

    redeem = [w for w in vera.wire if w.url == metadata["token_endpoint"]]
    assert [r.status for r in redeem] == [200], redeem
    form = {k: v[0] for k, v in parse_qs(redeem[0].body).items()}
    assert form["grant_type"] == "authorization_code"
    assert form["client_id"] == client_id
    assert form["redirect_uri"] == REDIRECT
    assert form["resource"] == demo.mcp
    assert len(form["code_verifier"]) >= 43

    tokens = vera.storage.tokens
    assert tokens is not None
    assert scopes(tokens.scope) == ALL_SCOPES, tokens.scope
    claims = jwt_claims(tokens.access_token, demo, metadata)
    assert claims["aud"] == demo.mcp
    assert claims["client_id"] == client_id
    # vera's role came from single sign-on (her group at the identity provider).
    assert claims.get("roles") == ["Viewer"], claims

    # The MCP request the 401 answered went through again with the token.
    retried = [w for w in vera.wire if w.url == demo.mcp]
    assert retried[-1].status == 200, retried


async def test_viewer_lists_her_tools(vera: Host) -> None:
    async with vera.connect() as client:
        listed = await client.list_tools()
    assert sorted(t.name for t in listed.tools) == ["list_events", "lookup_customer"]


async def test_lookup_customer_is_allowed(vera: Host) -> None:
    async with vera.connect() as client:
        result = await client.call_tool("lookup_customer", {"name": "Acme"})
    assert not result.is_error, f"lookup_customer should be allowed: {text_of(result)}"
    assert "Acme Inc." in text_of(result), text_of(result)


async def test_create_event_is_denied(vera: Host) -> None:
    async with vera.connect() as client:
        result = await client.call_tool("create_event", {"title": "Standup", "start": "2030-01-07T09:00:00Z"})
    assert result.is_error is True, f"create_event should be denied for a Viewer: {text_of(result)}"
    assert text_of(result).startswith("Not allowed:"), text_of(result)


async def test_list_events_connect_then_allowed(demo: Demo, vera: Host) -> None:
    async with vera.connect() as client:
        # Not connected to the calendar yet, and no URL elicitation declared: the link as text.
        first = await client.call_tool("list_events", {})
        assert first.is_error is True, text_of(first)
        m = re.fullmatch(r"Connect your account to continue: (\S+)", text_of(first))
        assert m, text_of(first)
        # She opens it in the browser she signed in with and connects her calendar.
        await connect_in_browser(vera.browser, demo, m.group(1))

        listed = await client.call_tool("list_events", {})
        assert not listed.is_error, f"list_events once connected: {text_of(listed)}"
        assert json.loads(text_of(listed)) == {"items": []}, text_of(listed)

    # One sign-in for the whole module: every later connection reused the stored token.
    assert len(vera.authorizations) == 1, vera.authorizations

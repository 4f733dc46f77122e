"""Rules between fields that JSON Schema cannot state, for scripts/api-check.

The OpenAPI document states every rule on a single value (types, lengths, patterns, enums,
required fields). A few rules relate two values; the document says them in words, and here each
generated request is made to follow them before it is sent, so that a refused request is always a
difference between the document and the server. Each rule below names the description that
states it. schemathesis re-judges every request after this hook (valid or not against the
document), so a request this hook edits is checked as what it became.
"""

import json
from datetime import datetime, timedelta, timezone

import os
from urllib.parse import unquote

import requests
import schemathesis

# The server under test, to read what is stored (scripts/api-check sets these).
SERVER = os.environ.get("API_CHECK_URL", "")
ADMIN_KEY = os.environ.get("API_CHECK_KEY", "")


def _stored_app(app_id):
    """The app as stored, or None: some rules relate a request to what is stored."""
    if not isinstance(app_id, str) or not SERVER:
        return None
    r = requests.get(
        f"{SERVER}/v1/mgmt/outbound-apps/{requests.utils.quote(app_id, safe='')}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    return r.json() if r.status_code == 200 else None


def _stored_client(client_id):
    """The client as stored, or None."""
    if not isinstance(client_id, str) or not SERVER:
        return None
    r = requests.get(
        f"{SERVER}/v1/mgmt/clients/{requests.utils.quote(unquote(client_id), safe='')}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    return r.json() if r.status_code == 200 else None


def _client(client, stored):
    """ClientInput: redirect URIs are absolute https (or loopback http) URIs in canonical form;
    `authorization_code` needs one; a public client (`none`) uses neither `client_credentials`,
    token exchange nor jwt-bearer; an update keeps the stored `tokenEndpointAuthMethod`."""
    if not isinstance(client, dict):
        return
    if stored is not None:
        client["tokenEndpointAuthMethod"] = stored.get("tokenEndpointAuthMethod")
    uris = client.get("redirectUris")
    if isinstance(uris, list):
        client["redirectUris"] = [f"https://client{i}.example/cb" for i in range(len(uris))]
    method = client.get("tokenEndpointAuthMethod") or "client_secret_basic"
    grants = client.get("grantTypes")
    if isinstance(grants, list) and method == "none":
        kept = [g for g in grants if g in ("authorization_code", "refresh_token")]
        client["grantTypes"] = kept or ["authorization_code"]
    grants = client.get("grantTypes")
    needs_uri = (isinstance(grants, list) and "authorization_code" in grants) or (
        grants is None and method == "none"
    )
    if needs_uri and not client.get("redirectUris"):
        client["redirectUris"] = ["https://client.example/cb"]


def _registration(body):
    """RegistrationRequest: redirect URIs are absolute https URIs in canonical form (a native
    application's, loopback http); `grant_types` include `authorization_code`."""
    if not isinstance(body, dict):
        return
    uris = body.get("redirect_uris")
    count = len(uris) if isinstance(uris, list) and uris else 1
    if body.get("application_type") == "native":
        body["redirect_uris"] = [f"http://127.0.0.1/cb{i}" for i in range(count)]
    else:
        body["redirect_uris"] = [f"https://client{i}.example/cb" for i in range(count)]
    grants = body.get("grant_types")
    if isinstance(grants, list) and "authorization_code" not in grants:
        body["grant_types"] = ["authorization_code"] + [g for g in grants if g == "refresh_token"][:1]


def _offered(stored):
    return [s["name"] for s in (stored or {}).get("scopes") or []]


def _keep_type(app, stored):
    """AppInput: an app's `type` is immutable."""
    if isinstance(app, dict) and stored and app.get("type") != stored.get("type"):
        app["type"] = stored["type"]

# An API-key app has none of these (AppInput: "OAuth apps" fields).
OAUTH_ONLY = [
    "clientId",
    "clientSecret",
    "authorizationUrl",
    "tokenUrl",
    "revocationUrl",
    "userinfoUrl",
    "scopes",
    "defaultScopes",
    "authorizationParams",
    "issuer",
    "sharedCallback",
]


def _app(app):
    """AppInput: an `oauth` app names its client id and endpoints; an `apiKey` app none of the
    OAuth fields, and cannot re-consent; `defaultScopes` are among `scopes` when the app lists
    them; scope names are unique; a public client (`none`) uses PKCE."""
    if not isinstance(app, dict):
        return
    if app.get("type") == "apiKey":
        for field in OAUTH_ONLY:
            app.pop(field, None)
        if app.get("narrowScopesOnRefresh") is True:
            app["narrowScopesOnRefresh"] = False
        if app.get("onDeny") == "reconsent":
            app["onDeny"] = "forbid"
        return
    if app.get("type") != "oauth":
        return
    if not isinstance(app.get("clientId"), str):
        app["clientId"] = "client"
    for field, url in (
        ("authorizationUrl", "https://provider.example/authorize"),
        ("tokenUrl", "https://provider.example/token"),
    ):
        if not isinstance(app.get(field), str):
            app[field] = url
    scopes = app.get("scopes")
    if isinstance(scopes, list):
        seen, unique = set(), []
        for scope in scopes:
            name = json.dumps(scope.get("name") if isinstance(scope, dict) else None)
            if name not in seen:
                seen.add(name)
                unique.append(scope)
        app["scopes"] = unique
        names = {json.loads(n) for n in seen if isinstance(json.loads(n), str)}
        defaults = app.get("defaultScopes")
        if unique and isinstance(defaults, list):
            app["defaultScopes"] = [s for s in defaults if isinstance(s, str) and s in names]
    if app.get("tokenEndpointAuthMethod") == "none":
        if app.get("pkce") is False:
            app["pkce"] = True
    elif not isinstance(app.get("clientSecret"), str):
        # A confidential client (the default) needs its secret.
        app["clientSecret"] = "secret"


def _issuer(issuer):
    """IssuerInput: an issuer needs `jwksUrl` or `discoveryUrl`."""
    if isinstance(issuer, dict) and not any(
        isinstance(issuer.get(k), str) for k in ("jwksUrl", "discoveryUrl")
    ):
        issuer["jwksUrl"] = "https://issuer.example/jwks"


def _unique(items, key):
    if not isinstance(items, list):
        return items
    seen, out = set(), []
    for item in items:
        k = json.dumps(key(item), sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def _user(user):
    """UserInput: a tenant is listed once, an identity once."""
    if not isinstance(user, dict):
        return
    if "tenants" in user:
        user["tenants"] = _unique(
            user["tenants"], lambda m: m.get("tenantId") if isinstance(m, dict) else None
        )
    if "identities" in user:
        user["identities"] = _unique(
            user["identities"],
            lambda i: (i.get("issuer"), i.get("subject")) if isinstance(i, dict) else None,
        )


def _list(value):
    """A list as it is, anything else (a wrong type the server refuses anyway) as no items."""
    return value if isinstance(value, list) else []


def _apply(state):
    """ApplyInput: each role, tenant, user and app once; users name only roles and tenants the
    desired state holds (it is applied on an empty directory here)."""
    if not isinstance(state, dict):
        return
    for kind, key in (("roles", "name"), ("tenants", "id"), ("users", "id"), ("apps", "id")):
        if isinstance(state.get(kind), list):
            state[kind] = _unique(state[kind], lambda e: e.get(key) if isinstance(e, dict) else None)
    roles = {r.get("name") for r in _list(state.get("roles")) if isinstance(r, dict) and isinstance(r.get("name"), str)}
    tenants = {t.get("id") for t in _list(state.get("tenants")) if isinstance(t, dict) and isinstance(t.get("id"), str)}
    for user in _list(state.get("users")):
        _user(user)
        if not isinstance(user, dict):
            continue
        if isinstance(user.get("roles"), list):
            user["roles"] = [r for r in user["roles"] if isinstance(r, str) and r in roles]
        if isinstance(user.get("tenants"), list):
            user["tenants"] = [
                m for m in user["tenants"]
                if isinstance(m, dict) and isinstance(m.get("tenantId"), str) and m["tenantId"] in tenants
            ]
            for m in user["tenants"]:
                if isinstance(m.get("roles"), list):
                    m["roles"] = [r for r in m["roles"] if isinstance(r, str) and r in roles]
    for app in _list(state.get("apps")):
        if isinstance(app, dict):
            _keep_type(app, _stored_app(app.get("id")))
        _app(app)
        if not isinstance(app, dict) or not isinstance(app.get("policies"), list):
            continue
        # A policy names only scopes its app offers.
        offered = {
            s.get("name") for s in _list(app.get("scopes"))
            if isinstance(s, dict) and isinstance(s.get("name"), str)
        }
        for policy in app["policies"]:
            _conditions(policy)
            if isinstance(policy, dict) and isinstance(policy.get("scopes"), list):
                policy["scopes"] = [s for s in policy["scopes"] if isinstance(s, str) and s in offered] or "all"
        if isinstance(app, dict) and isinstance(app.get("policies"), list):
            app["policies"] = _unique(
                app["policies"],
                lambda p: p.get("name", "").lower() if isinstance(p, dict) and isinstance(p.get("name"), str) else None,
            )


DECISION_FILTERS = ("appId", "userId", "tenantId", "clientId", "outcome")
MANAGEMENT_FILTERS = ("actor", "target", "action")


def _audit(query):
    """AuditParams: `actor`, `target` and `action` filter the management log (`kind=management`),
    the other filters the decision log."""
    if not isinstance(query, dict):
        return
    drop = DECISION_FILTERS if query.get("kind") == "management" else MANAGEMENT_FILTERS
    for name in drop:
        query.pop(name, None)


SUMMARY_MAX_BUCKETS = 500
SUMMARY_MAX_BUCKET = 31_622_400


def _instant(text):
    """An RFC 3339 date-time, or None when Python cannot read it (then the hook leaves it)."""
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _summary(query):
    """AuditSummaryParams: `since` before `until` (by default now, and `until` minus 24 hours),
    and at most 500 buckets in the window: a narrower bucket is widened, and a window too long
    even for the widest bucket is shortened."""
    if not isinstance(query, dict):
        return
    now = datetime.now(timezone.utc)
    until = _instant(query["until"]) if "until" in query else now
    if until is None:
        return
    since = _instant(query["since"]) if "since" in query else None
    if "since" in query and since is None:
        return
    try:
        since = since or until - timedelta(hours=24)
    except OverflowError:
        return
    if since >= until:
        query.pop("since", None)
        query.pop("until", None)
        since, until = now - timedelta(hours=24), now
    bucket = query.get("bucket", 3600)
    if isinstance(bucket, str) and bucket.isdigit():
        bucket = int(bucket)
    if isinstance(bucket, bool) or not isinstance(bucket, int):
        return
    if not 60 <= bucket <= SUMMARY_MAX_BUCKET:
        return
    # The window starts on a bucket boundary at or before `since`: one bucket more at most.
    span = (until - since).total_seconds()
    need = -(-int(span) // (SUMMARY_MAX_BUCKETS - 2))
    if need > bucket:
        bucket = min(need, SUMMARY_MAX_BUCKET)
        query["bucket"] = bucket
    if span > (SUMMARY_MAX_BUCKETS - 2) * bucket:
        try:
            query["since"] = (until - timedelta(seconds=(SUMMARY_MAX_BUCKETS - 2) * bucket)).isoformat()
        except OverflowError:
            query.pop("since", None)
            query.pop("until", None)


def _simulate(question):
    """SimulateInput: `token` or `subject`, not both; a `token` is verified like a token
    request's (this server trusts no issuer, so the question names a subject)."""
    if not isinstance(question, dict):
        return
    question.pop("token", None)
    if question.get("token") is not None and question.get("subject") is not None:
        question.pop("token")
    if question.get("token") is None and question.get("subject") is None:
        question.pop("token", None)
        question["subject"] = {}


def _admin_key(key):
    """AdminKeyInput: `expiresAt` is in the future."""
    if isinstance(key, dict) and isinstance(key.get("expiresAt"), str):
        try:
            at = datetime.fromisoformat(key["expiresAt"].replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return
        if at.tzinfo is not None and at <= datetime.now(timezone.utc):
            key["expiresAt"] = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


LIST_OPERATORS = ("in", "notIn")


def _conditions(policy):
    """Condition: a `userRoles` condition has no `claim`, a `jwtClaims` one has one; `in` and
    `notIn` take a non-empty list of values, the other operators one value."""
    for c in _list(policy.get("conditions")) if isinstance(policy, dict) else []:
        if not isinstance(c, dict):
            continue
        if c.get("source") == "userRoles":
            # Roles are names: their values are strings.
            c.pop("claim", None)
            value = c.get("value")
            if isinstance(value, list):
                c["value"] = [v if isinstance(v, str) else "Viewer" for v in value]
            elif value is not None and not isinstance(value, str):
                c["value"] = "Viewer"
        elif c.get("source") == "jwtClaims" and not isinstance(c.get("claim"), str):
            c["claim"] = "org_id"
        value = c.get("value")
        if c.get("operator") in LIST_OPERATORS:
            if value is not None and not isinstance(value, list):
                c["value"] = [value]
            elif value == []:
                c["value"] = ["Viewer"]
        elif isinstance(value, list):
            if value:
                c["value"] = value[0]
            else:
                c.pop("value", None)


def _policy(policy, stored):
    """PolicyDocument: the scopes a policy grants are among those its app offers."""
    _conditions(policy)
    if isinstance(policy, dict) and isinstance(policy.get("scopes"), list):
        offered = _offered(stored)
        policy["scopes"] = [s for s in policy["scopes"] if isinstance(s, str) and s in offered] or "all"


def _replay(body, stored):
    """ReplayInput: each draft policy is a PolicyDocument of the app (its scopes among those the
    app offers), names unique ignoring case; the window does not end before it starts."""
    if not isinstance(body, dict):
        return
    for policy in _list(body.get("policies")):
        _policy(policy, stored)
    if isinstance(body.get("policies"), list):
        body["policies"] = _unique(
            body["policies"],
            lambda p: p.get("name", "").strip().lower() if isinstance(p, dict) and isinstance(p.get("name"), str) else None,
        )
    since, until = body.get("since"), body.get("until")
    if isinstance(since, str) and isinstance(until, str) and since > until:
        body["since"], body["until"] = until, since


def _connect_link(request):
    """AdminConnectRequest: it names a `tenantId` or a `userId`; a `returnUrl` is one the
    configuration allows (here none)."""
    if isinstance(request, dict) and "tokens" not in request:
        request.pop("returnUrl", None)
        if not isinstance(request.get("tenantId"), str) and not isinstance(request.get("userId"), str):
            request["userId"] = "user0"


def _import(body):
    """ImportToken: each token names a `userId` or a `tenantId`, each owner once."""
    tokens = body.get("tokens") if isinstance(body, dict) else None
    if not isinstance(tokens, list):
        return
    for i, t in enumerate(tokens):
        if isinstance(t, dict) and not isinstance(t.get("userId"), str) and not isinstance(t.get("tenantId"), str):
            t["userId"] = f"user{i}"
    body["tokens"] = _unique(tokens, lambda t: (t.get("userId"), t.get("tenantId")) if isinstance(t, dict) else None)


def _requested_scopes(request, stored):
    """A connect link asks only for scopes the app offers (when it lists them)."""
    offered = _offered(stored)
    if isinstance(request, dict) and offered and isinstance(request.get("scopes"), list):
        request["scopes"] = [s for s in request["scopes"] if s in offered]


# PUT path -> (path parameter, body property naming the entity).
UPDATES = {
    "/v1/mgmt/outbound-apps/{appId}": ("appId", "id"),
    "/v1/mgmt/users/{userId}": ("userId", "id"),
    "/v1/mgmt/tenants/{tenantId}": ("tenantId", "id"),
    "/v1/mgmt/roles/{name}": ("name", "name"),
    "/v1/mgmt/clients/{clientId}": ("clientId", "id"),
    "/v1/mgmt/resources/{resourceId}": ("resourceId", "id"),
    "/v1/mgmt/sso-connections/{connectionId}": ("connectionId", "id"),
}


def _resource(resource):
    """ResourceInput: each scope is listed once."""
    if isinstance(resource, dict) and isinstance(resource.get("scopes"), list):
        resource["scopes"] = _unique(
            resource["scopes"], lambda s: s.get("name") if isinstance(s, dict) else None
        )


def _same_id(case, body):
    """AppUpdate, UserUpdate, ...: an update's `id` (a role's `name`), when given, is the path's."""
    if case.method.upper() != "PUT" or not isinstance(body, dict):
        return
    names = UPDATES.get(case.operation.path)
    if names and names[1] in body:
        # Path parameters are held percent-encoded, as they are sent.
        value = (case.path_parameters or {}).get(names[0])
        body[names[1]] = unquote(value) if isinstance(value, str) else value


@schemathesis.hook
def before_call(context, case, kwargs):
    label = f"{case.method.upper()} {case.operation.path}"
    body = case.body if isinstance(case.body, dict) else None
    app_id = (case.path_parameters or {}).get("appId")
    _same_id(case, body)
    if label == "POST /v1/mgmt/outbound-apps":
        _app(body)
    elif label == "PUT /v1/mgmt/outbound-apps/{appId}":
        _keep_type(body, _stored_app(app_id))
        _app(body)
    elif label in ("POST /v1/mgmt/issuers", "PUT /v1/mgmt/issuers/{issuerId}"):
        _issuer(body)
    elif label in ("POST /v1/mgmt/users", "PUT /v1/mgmt/users/{userId}"):
        _user(body)
    elif label == "POST /v1/mgmt/admin-keys":
        _admin_key(body)
    elif label in (
        "POST /v1/mgmt/outbound-apps/{appId}/policies",
        "PUT /v1/mgmt/outbound-apps/{appId}/policies/{policyId}",
    ):
        _policy(body, _stored_app(app_id))
    elif label == "POST /v1/mgmt/outbound-apps/{appId}/policies/replay":
        _replay(body, _stored_app(app_id))
    elif label in (
        "POST /v1/mgmt/outbound-apps/{appId}/connect",
        "POST /v1/mgmt/outbound-apps/{appId}/tokens",
    ):
        stored = _stored_app(app_id)
        _connect_link(body)
        _import(body)
        _requested_scopes(body, stored)
        tokens = (body or {}).get("tokens")
        for token in tokens if isinstance(tokens, list) else []:
            _requested_scopes(token, stored)
    elif label == "POST /oauth2/register":
        _registration(body)
    elif label == "POST /v1/mgmt/clients":
        _client(body, None)
    elif label == "PUT /v1/mgmt/clients/{clientId}":
        _client(body, _stored_client((case.path_parameters or {}).get("clientId")))
    elif label in ("POST /v1/mgmt/resources", "PUT /v1/mgmt/resources/{resourceId}"):
        _resource(body)
    elif label == "POST /v1/mgmt/apply":
        _apply(body)
    elif label == "POST /v1/mgmt/decisions/simulate":
        _simulate(body)
    elif label in ("GET /v1/mgmt/audit", "GET /v1/mgmt/audit/export"):
        _audit(case.query)
    elif label == "GET /v1/mgmt/audit/summary":
        _summary(case.query)

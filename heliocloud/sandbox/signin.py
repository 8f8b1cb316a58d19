"""The sandbox's stand-in for the Cognito hosted UI: OAuth 2.0 authorization-code sign-in on
loopback, backed by the sandbox's user pool in moto.

Moto has the user pool API but no hosted UI (``/oauth2/authorize``, ``/oauth2/token``,
``/logout``). This module serves those three endpoints so that the hub's GenericOAuthenticator
runs its whole, unchanged flow: redirect to the authorize page, a code back to
``/hub/oauth_callback``, the code exchanged for tokens with the client's id and secret. The
protocol itself is oauthlib's (``WebApplicationServer``); what is local is only the sign-in form
and where the tokens come from: the pool's ``AdminInitiateAuth``, so the ID token is moto's real
signed JWT with the user's ``email`` and ``cognito:groups``, as Cognito's would be.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs

from botocore.exceptions import ClientError
from oauthlib.oauth2 import RequestValidator, WebApplicationServer

from heliocloud.sandbox.moto import free_port

CODE_TTL_SECONDS = 300
SCOPES = ["openid", "email", "profile"]
_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - HelioCloud sandbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#0b1d33;color:#eee;display:grid;place-items:center;
min-height:100vh;margin:0}}form{{background:#fff;color:#222;padding:2rem;border-radius:8px;width:20rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{margin-top:1.2rem;width:100%;padding:.6rem;background:#f5a623;border:0;font-weight:600}}
.error{{color:#b00020}}</style></head>
<body><form method="post" action="/oauth2/authorize?{query}">
<h1>HelioCloud</h1><p>Sandbox sign-in (the instance's user pool)</p>
{error}
<label for="email">E-mail</label><input id="email" name="email" type="email" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>
"""


def secret_hash(client_id: str, client_secret: str, username: str) -> str:
    """Cognito's SECRET_HASH, which an app client with a secret requires on every sign-in."""
    digest = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class _PoolValidator(RequestValidator):
    """oauthlib's questions, answered from the pool's app clients (moto) and this server's codes."""

    def __init__(self, cognito, pool_id: str):
        self.cognito, self.pool_id = cognito, pool_id
        self._codes: dict[str, dict] = {}
        self._lock = threading.Lock()

    def app_client(self, client_id: str) -> dict | None:
        try:
            return self.cognito.describe_user_pool_client(UserPoolId=self.pool_id, ClientId=client_id)["UserPoolClient"]
        except ClientError:
            return None

    # -- the authorize request
    def validate_client_id(self, client_id, request, *args, **kwargs):
        client = self.app_client(client_id)
        return bool(client and "code" in client.get("AllowedOAuthFlows", []))

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        return redirect_uri in (self.app_client(client_id) or {}).get("CallbackURLs", [])

    def get_default_redirect_uri(self, client_id, request, *args, **kwargs):
        return None   # Cognito too wants redirect_uri on every request

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs):
        return response_type == "code"

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        allowed = (self.app_client(client_id) or {}).get("AllowedOAuthScopes", [])
        return set(scopes) <= set(allowed)

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return list(SCOPES)

    def is_pkce_required(self, client_id, request):
        return False

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        with self._lock:
            self._codes[code["code"]] = {
                "client_id": client_id, "redirect_uri": request.redirect_uri,
                "tokens": request.pool_tokens, "expires": time.monotonic() + CODE_TTL_SECONDS,
                # PKCE, as Cognito does it: the token request must bring the verifier.
                "code_challenge": request.code_challenge, "code_challenge_method": request.code_challenge_method,
            }

    def get_code_challenge(self, code, request):
        with self._lock:
            return (self._codes.get(code) or {}).get("code_challenge")

    def get_code_challenge_method(self, code, request):
        with self._lock:
            return (self._codes.get(code) or {}).get("code_challenge_method")

    # -- the token request
    def client_authentication_required(self, request, *args, **kwargs):
        return True

    def authenticate_client(self, request, *args, **kwargs):
        """HTTP Basic (OAuthenticator's default) or client_id/client_secret in the body."""
        client_id, client_secret = request.client_id, request.client_secret
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        client = self.app_client(client_id or "")
        if not client or not client_secret or not hmac.compare_digest(client.get("ClientSecret", ""), client_secret):
            return False
        # oauthlib reads the id from request.client.
        request.client_id, request.client = client_id, SimpleNamespace(client_id=client_id, app_client=client)
        return True

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        with self._lock:
            grant = self._codes.get(code)
        if not grant or grant["client_id"] != client_id or grant["expires"] < time.monotonic():
            return False
        request.pool_tokens, request.scopes, request.user = grant["tokens"], list(SCOPES), grant["tokens"]
        return True

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        with self._lock:
            grant = self._codes.get(code)
        return bool(grant) and grant["redirect_uri"] == redirect_uri

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        return grant_type == "authorization_code"

    def save_bearer_token(self, token, request, *args, **kwargs):
        # The pool's own tokens replace oauthlib's random ones: the hub reads the user from the
        # ID token, as it does from Cognito's.
        tokens = request.pool_tokens
        token.update({"access_token": tokens["AccessToken"], "id_token": tokens["IdToken"],
                      "refresh_token": tokens.get("RefreshToken", ""), "expires_in": tokens["ExpiresIn"],
                      "token_type": "Bearer"})
        token.pop("scope", None)

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        with self._lock:
            self._codes.pop(code, None)   # a code is good for one exchange


class HostedSignIn:
    """``HostedSignIn(cognito, pool_id).start()``; ``url`` is what Cognito's domain is in AWS."""

    def __init__(self, cognito, pool_id: str, *, port: int | None = None):
        # oauthlib refuses http:// URIs unless told; this server only ever listens on loopback.
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        self.cognito, self.pool_id = cognito, pool_id
        self.validator = _PoolValidator(cognito, pool_id)
        self.oauth = WebApplicationServer(self.validator)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "HostedSignIn":
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        threading.Thread(target=self._server.serve_forever, name="hosted-signin", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def pool_sign_in(self, client: dict, email: str, password: str) -> dict:
        """The pool's tokens for this user and app client (raises ClientError when refused)."""
        params = {"USERNAME": email, "PASSWORD": password}
        if client.get("ClientSecret"):
            params["SECRET_HASH"] = secret_hash(client["ClientId"], client["ClientSecret"], email)
        result = self.cognito.admin_initiate_auth(UserPoolId=self.pool_id, ClientId=client["ClientId"],
                                                  AuthFlow="ADMIN_USER_PASSWORD_AUTH", AuthParameters=params)
        if "AuthenticationResult" not in result:
            raise PermissionError(f"this account needs {result.get('ChallengeName')} first")
        return result["AuthenticationResult"]

    def _handler_class(self):
        signin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                """Silent on purpose: request lines of the sign-in carry codes and form posts."""

            def _reply(self, status: int, body: str | bytes = b"", headers: dict | None = None):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> str:
                length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
                return self.rfile.read(length).decode()

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path == "/oauth2/authorize":
                    return signin.authorize_form(self, query)
                if path == "/logout":
                    target = parse_qs(query).get("logout_uri", ["/"])[0]
                    return self._reply(302, headers={"Location": target})
                return self._reply(404, "not found")

            def do_POST(self):
                path, _, query = self.path.partition("?")
                if path == "/oauth2/authorize":
                    return signin.authorize_submit(self, query, self._body())
                if path == "/oauth2/token":
                    headers, body, status = signin.oauth.create_token_response(
                        f"{signin.url}{self.path}", http_method="POST", body=self._body(),
                        headers=dict(self.headers))
                    return self._reply(status, body or "", headers)
                return self._reply(404, "not found")

        return Handler

    def authorize_form(self, req, query: str, *, error: str = "", status: int = 200) -> None:
        uri = f"{self.url}/oauth2/authorize?{query}"
        try:
            self.oauth.validate_authorization_request(uri)
        except Exception as exc:  # noqa: BLE001 - oauthlib's errors: a bad client or redirect
            return req._reply(400, f"invalid sign-in request: {html.escape(str(exc))}",
                              {"Content-Type": "text/plain; charset=utf-8"})
        note = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        req._reply(status, _FORM.format(query=html.escape(query), error=note), {"Content-Type": "text/html; charset=utf-8"})

    def authorize_submit(self, req, query: str, body: str) -> None:
        uri = f"{self.url}/oauth2/authorize?{query}"
        try:
            scopes, credentials = self.oauth.validate_authorization_request(uri)
        except Exception as exc:  # noqa: BLE001
            return req._reply(400, f"invalid sign-in request: {html.escape(str(exc))}")
        form = parse_qs(body)
        email, password = form.get("email", [""])[0].strip(), form.get("password", [""])[0]
        client = self.validator.app_client(credentials["client_id"])
        try:
            tokens = self.pool_sign_in(client, email, password)
        except (ClientError, PermissionError) as exc:
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else ""
            message = ("Wrong e-mail or password." if code in ("NotAuthorizedException", "UserNotFoundException")
                       else str(exc))
            return self.authorize_form(req, query, error=message, status=401)
        credentials["pool_tokens"] = tokens
        headers, _, status = self.oauth.create_authorization_response(
            uri, http_method="GET", scopes=scopes, credentials=credentials)
        req._reply(status, b"", headers)


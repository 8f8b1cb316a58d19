"""Sandbox part: the portal on loopback.

Provisions the portal's tables, a VPC/subnet/security group, the EC2 actor role and a Cognito app
client on the sandbox's moto server; then serves the static UI and the JSON API on one local port.
Each API request is turned into the API Gateway HTTP API (payload 2.0) event the deployed Lambda
receives — after verifying the Cognito JWT against the pool's JWKS, exactly as the JWT
authorizer does — and handed to the same handler. A poller stands in for EventBridge (EC2
state changes → ledger handler) and the budget enforcer runs every minute.
"""
from __future__ import annotations

import json
import mimetypes
import os
import socket
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from botocore.exceptions import ClientError
from hc_portal import api as portal_api
from hc_portal import enforcer, events, ledger, reconcile
from hc_portal import settings as portal_settings
from hc_portal.launch import OWNER_TAG, PORTAL_TAG
from hc_portal.store import Store
from hc_portal.tables import ENV_VARS, TABLES, TTL_ATTRIBUTES

from heliocloud.sandbox import Sandbox
from heliocloud.sandbox.moto import free_port

UI_DIR = Path(__file__).resolve().parents[2] / "portal-ui"
EVENT_POLL_SECONDS = 1.0
MAX_BODY_BYTES = 64 * 1024  # the API's bodies are tiny; refuse anything that is not
ENFORCE_SECONDS = 60.0


# ----------------------------------------------------------------- provisioning

def create_tables(dynamodb, prefix: str) -> dict[str, str]:
    names = {}
    for logical, (pk, sk, indexes) in TABLES.items():
        name = f"{prefix}-portal-{logical}"
        attrs = {pk} | ({sk} if sk else set()) | set(indexes.values())
        kwargs = {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attrs)],
            "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"}] + ([{"AttributeName": sk, "KeyType": "RANGE"}] if sk else []),
        }
        if indexes:
            kwargs["GlobalSecondaryIndexes"] = [{"IndexName": index, "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
                                                 "Projection": {"ProjectionType": "ALL"}} for index, key in indexes.items()]
        dynamodb.create_table(**kwargs)
        if logical in TTL_ATTRIBUTES:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": TTL_ATTRIBUTES[logical]})
        names[logical] = name
    return names


def _moto_ami(ec2, name_prefix: str) -> str:
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": [f"{name_prefix}*"]}])["Images"]
    return sorted(images, key=lambda i: i["Name"])[-1]["ImageId"]


def resolve_images(ec2, ssm, images: list[dict]) -> list[dict]:
    """The configured images, resolved for moto: a public SSM parameter moto knows is kept (the
    handler resolves it at launch, as in AWS); one it lacks (AWS reserves /aws/ names, so it
    cannot be published) becomes a stock moto AMI of the same OS family."""
    out = []
    for image in images:
        param = image.get("ssm_parameter")
        if param:
            try:
                ssm.get_parameter(Name=param)
            except ClientError:
                prefix = "ubuntu/images" if image["os"] in ("ubuntu", "debian") else "amzn"
                image = {**{k: v for k, v in image.items() if k != "ssm_parameter"}, "ami": _moto_ami(ec2, prefix)}
        out.append(image)
    return out


def provision(sandbox: Sandbox, *, client_name: str = "portal") -> dict:
    """Everything the portal needs in moto; returns the settings env and the Cognito client id."""
    config = sandbox.config
    ec2, ssm, iam = sandbox.client("ec2"), sandbox.client("ssm"), sandbox.client("iam")
    tables = create_tables(sandbox.client("dynamodb"), config.name)
    vpc = ec2.create_vpc(CidrBlock=config.network["cidr"])["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=config.network["cidr"].rsplit(".", 2)[0] + ".0.0/20")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"{config.name}-portal-vms", Description="portal VMs", VpcId=vpc)["GroupId"]
    for cidr in config.portal["ssh_cidrs"]:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}])
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                      "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
    actor = iam.create_role(RoleName=f"{config.name}-portal-ec2-actor", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName=f"{config.name}-portal-vm")["InstanceProfile"]["Arn"]
    portal = dict(config.portal)
    portal["images"] = resolve_images(ec2, ssm, [dict(i) for i in portal["images"]])
    doc = portal_settings.document(portal, portal_name=config.name, region=sandbox.region, subnet_ids=[subnet],
                                   security_group_id=group, instance_profile_arn=profile, actor_role_arn=actor)
    env = {"PORTAL_SETTINGS": json.dumps(doc, separators=(",", ":"))}
    env.update({ENV_VARS[logical]: name for logical, name in tables.items()})
    cognito = sandbox.client("cognito-idp")
    pool_id = sandbox.endpoints["cognito"]["user_pool_id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName=client_name,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return {"env": env, "client_id": client_id, "pool_id": pool_id}


# ----------------------------------------------------------------- JWT authorizer

class JwtAuthorizer:
    """What API Gateway's JWT authorizer does: RS256 signature against the pool's JWKS, issuer,
    audience (the portal client), expiry. Only claims of a verified token reach the handler."""

    def __init__(self, *, aws_url: str, region: str, pool_id: str, client_id: str):
        self.issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
        self.client_id = client_id
        self.jwks = jwt.PyJWKClient(f"{aws_url}/{pool_id}/.well-known/jwks.json", cache_keys=True, lifespan=3600)

    def claims(self, authorization: str | None) -> dict | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = authorization.split(" ", 1)[1].strip()
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=self.issuer, audience=self.client_id,
                                options={"require": ["exp", "iss", "sub", "aud"]})
        except jwt.PyJWTError:
            return None
        if claims.get("token_use") != "id":
            return None
        # HTTP APIs hand claims over as strings; arrays become "[a b]".
        return {k: (f"[{' '.join(map(str, v))}]" if isinstance(v, list) else str(v)) for k, v in claims.items()}


def api_event(*, method: str, path: str, query: str, headers: dict, body: bytes, claims: dict,
              route_key: str, path_parameters: dict) -> dict:
    """The API Gateway HTTP API payload v2.0 event for one request."""
    text = body.decode("utf-8", errors="replace") if body else None
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": {k: ",".join(v) for k, v in parse_qs(query).items()} or None,
        "pathParameters": path_parameters or None,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
            "authorizer": {"jwt": {"claims": claims, "scopes": None}},
        },
        "body": text,
        "isBase64Encoded": False,
    }


# ----------------------------------------------------------------- HTTP adapter

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self' https://*.amazoncognito.com; frame-ancestors 'none'",
}


class PortalServer:
    def __init__(self, *, api: portal_api.Api, authorizer: JwtAuthorizer, cognito, client_id: str,
                 ui_dir: Path = UI_DIR, port: int = 0):
        self.api, self.authorizer, self.cognito, self.client_id, self.ui_dir = api, authorizer, cognito, client_id, ui_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self.httpd.daemon_threads = True

    def serve_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.httpd.serve_forever, name="portal-http", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # the request handler
    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body go out in two writes: without NODELAY, delayed ACKs add ~40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):  # the sandbox's console stays readable
                return

            def _send(self, status: int, body: bytes, headers: dict):
                self.send_response(status)
                for k, v in {**SECURITY_HEADERS, **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, doc: dict, **headers):
                self._send(status, json.dumps(doc).encode(), {"Content-Type": "application/json",
                                                              "Cache-Control": "no-store", **headers})

            def _body(self) -> bytes | None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    return None
                if not 0 <= length <= MAX_BODY_BYTES:
                    return None
                return self.rfile.read(length) if length else b""

            def _route(self, method: str):
                parts = urlsplit(self.path)
                body = self._body()
                if body is None:
                    self.close_connection = True
                    return self._json(413, {"message": "Request body too large"})
                if parts.path.startswith("/api/"):
                    return server.handle_api(self, method, parts.path, parts.query, body)
                if parts.path == "/auth/signin" and method == "POST":
                    return server.handle_signin(self, body)
                if parts.path == "/config.json" and method == "GET":
                    return self._json(200, {"mode": "sandbox", "signin": "/auth/signin"})
                if method == "GET":
                    return server.handle_static(self, parts.path)
                return self._json(404, {"message": "Not Found"})

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):
                self._route("PUT")

            def do_DELETE(self):
                self._route("DELETE")

        return Handler

    def handle_api(self, req, method: str, path: str, query: str, body: bytes) -> None:
        matched = portal_api.match_route(method, path)
        if matched is None:
            return req._json(404, {"message": "Not Found"})
        claims = self.authorizer.claims(req.headers.get("Authorization"))
        if claims is None:
            return req._json(401, {"message": "Unauthorized"})
        route_key, params = matched
        event = api_event(method=method, path=path, query=query, headers=dict(req.headers.items()), body=body,
                          claims=claims, route_key=route_key, path_parameters=params)
        result = portal_api.dispatch(self.api, event)
        req._send(result["statusCode"], result["body"].encode(), result.get("headers", {}))

    def handle_signin(self, req, body: bytes) -> None:
        """Sandbox sign-in (in AWS the UI uses the Cognito hosted UI with PKCE instead)."""
        try:
            doc = json.loads(body or b"{}")
            email, password = doc["email"], doc["password"]
        except (ValueError, KeyError, TypeError):
            return req._json(400, {"message": "email and password are required"})
        try:
            result = self.cognito.initiate_auth(ClientId=self.client_id, AuthFlow="USER_PASSWORD_AUTH",
                                                AuthParameters={"USERNAME": email, "PASSWORD": password})
        except ClientError as exc:
            return req._json(401, {"message": "Wrong e-mail or password." if exc.response["Error"]["Code"] in
                                   ("NotAuthorizedException", "UserNotFoundException") else exc.response["Error"]["Message"]})
        if "AuthenticationResult" not in result:
            return req._json(401, {"message": f"This account needs {result.get('ChallengeName')} first."})
        auth = result["AuthenticationResult"]
        return req._json(200, {"id_token": auth["IdToken"], "expires_in": auth["ExpiresIn"]})

    def handle_static(self, req, path: str) -> None:
        relative = "index.html" if path in ("/", "") else path.lstrip("/")
        target = (self.ui_dir / relative).resolve()
        if self.ui_dir.resolve() not in target.parents or not target.is_file():
            return req._json(404, {"message": "Not Found"})
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        req._send(200, target.read_bytes(), {"Content-Type": kind, "Cache-Control": "no-cache"})


# ----------------------------------------------------------------- EventBridge stand-in

class StateChangePoller:
    """Polls the portal's instances and emits an EC2 state-change event for each transition,
    shaped like EventBridge's, to the ledger handler."""

    def __init__(self, *, ec2, store: Store, settings):
        self.ec2, self.store, self.settings = ec2, store, settings
        self.seen: dict[str, str] = {}

    def poll_once(self) -> list[dict]:
        emitted = []
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": f"tag:{PORTAL_TAG}", "Values": [self.settings.portal_name]}])
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    iid, state = instance["InstanceId"], instance["State"]["Name"]
                    if self.seen.get(iid) == state:
                        continue
                    self.seen[iid] = state
                    event = {"version": "0", "id": str(uuid.uuid4()), "source": "aws.ec2",
                             "detail-type": "EC2 Instance State-change Notification",
                             "time": ledger.iso(datetime.now(timezone.utc)), "region": self.settings.region,
                             "resources": [iid], "detail": {"instance-id": iid, "state": state}}
                    events.apply(event, self.store, self.settings)
                    emitted.append(event)
        return emitted


# ----------------------------------------------------------------- demo history

def seed_demo_history(store: Store, settings, owner: str, email: str, now: datetime) -> None:
    """A terminated VM in alice's past week, so a fresh sandbox shows spend, a chart and a
    Cost Explorer figure. Clearly named as demo history."""
    iid = "i-0de300000000000a0"  # not a real VM: history only
    price = settings.hourly_price("m6i.large") or 0.1
    store.put_instance({"owner": owner, "instance_id": iid, "name": "demo-history", "image": settings.images[0]["name"],
                        "os": settings.images[0]["os"], "instance_type": "m6i.large", "volume_gb": 50, "email": email,
                        "launched_at": ledger.iso(now - timedelta(days=6)), "terminated_at": ledger.iso(now - timedelta(hours=20))})
    base = ledger.day_start((now - timedelta(days=6)).date())
    for day, hours in ((0, 6), (1, 9), (2, 3), (4, 8), (5, 4)):
        start = base + timedelta(days=day, hours=9)
        store.open_interval(owner, ledger.Interval(iid, "compute", start, start + timedelta(hours=hours), price))
    store.open_interval(owner, ledger.Interval(iid, "storage", base, base + timedelta(days=5, hours=13),
                                               settings.storage_rate_per_hour(50)))


def seed_cost_explorer(aws_url: str, owner: str, usd: float, today: date) -> None:
    start, end = reconcile.period(today)
    result = {"ResultsByTime": [{"TimePeriod": {"Start": start, "End": end}, "Total": {},
                                 "Groups": [{"Keys": [f"{OWNER_TAG}${owner}"],
                                             "Metrics": {"UnblendedCost": {"Amount": f"{usd:.4f}", "Unit": "USD"}}}],
                                 "Estimated": True}], "DimensionValueAttributes": []}
    requests.post(f"{aws_url}/moto-api/static/ce/cost-and-usage-results", json={"results": [result]},
                  timeout=10).raise_for_status()


# ----------------------------------------------------------------- the part

def start(sandbox: Sandbox) -> None:
    wired = provision(sandbox)
    os.environ.update(wired["env"])  # the handlers read their settings from the environment
    settings = portal_settings.current()
    store = Store(settings)
    ec2, cognito = sandbox.client("ec2"), sandbox.client("cognito-idp")
    api = portal_api.Api(settings, ec2=ec2, ssm=sandbox.client("ssm"))
    authorizer = JwtAuthorizer(aws_url=sandbox.aws_url, region=sandbox.region, pool_id=wired["pool_id"],
                               client_id=wired["client_id"])
    now = datetime.now(timezone.utc)
    alice = sandbox.endpoints.get("users", {}).get("alice")
    if alice:
        store.remember_user(alice["sub"], alice["email"])
        seed_demo_history(store, settings, alice["sub"], alice["email"], now)
        intervals = store.intervals_of(alice["sub"])
        billed = ledger.spend(intervals, ledger.month_start(now - timedelta(days=1)), ledger.day_start(now.date()))
        seed_cost_explorer(sandbox.aws_url, alice["sub"], billed, now.date())
        reconcile.reconcile(sandbox.client("ce"), store, settings, now.date())
    for user in sandbox.endpoints.get("users", {}).values():
        store.remember_user(user["sub"], user["email"])

    server = PortalServer(api=api, authorizer=authorizer, cognito=cognito, client_id=wired["client_id"])
    server.serve_in_background()
    sandbox.on_stop(server.close)
    poller = StateChangePoller(ec2=ec2, store=store, settings=settings)
    cloudwatch = sandbox.client("cloudwatch")

    def background() -> None:
        next_enforce = time.monotonic() + ENFORCE_SECONDS
        while not sandbox.stopping.wait(EVENT_POLL_SECONDS):
            try:
                poller.poll_once()
                if time.monotonic() >= next_enforce:
                    enforcer.enforce(ec2=ec2, cloudwatch=cloudwatch, store=store, settings=settings,
                                     now=datetime.now(timezone.utc))
                    next_enforce = time.monotonic() + ENFORCE_SECONDS
            except Exception as exc:  # noqa: BLE001 - keep the sandbox alive; the log says why
                with open(sandbox.state_dir / "portal.log", "a") as log:
                    log.write(f"{datetime.now(timezone.utc).isoformat()} background error: {exc!r}\n")

    sandbox.run_in_background(background, name="portal-events")
    sandbox.endpoints["portal"] = server.url
    sandbox.endpoints["portal_api"] = f"{server.url}/api"
    sandbox.endpoints["cognito"]["portal_client_id"] = wired["client_id"]

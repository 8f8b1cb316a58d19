"""The sandbox as a person runs it: start, read endpoints.json, use it, Ctrl-C, nothing left."""
from __future__ import annotations

import signal

import boto3
import pytest
import requests

from sandbox_support import running_sandbox

pytestmark = pytest.mark.moto


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    state = tmp_path_factory.mktemp("sandbox")
    with running_sandbox(state) as (proc, endpoints):
        yield proc, state, endpoints


def test_endpoints_json_has_the_interface_keys(sandbox):
    _, _, endpoints = sandbox
    assert {"s3", "portal", "gateway", "users"} <= set(endpoints)
    assert endpoints["s3"].startswith("http://127.0.0.1:")
    assert {"alice", "bob"} <= set(endpoints["users"])


def test_demo_users_can_sign_in(sandbox):
    _, _, endpoints = sandbox
    cognito = boto3.client("cognito-idp", endpoint_url=endpoints["s3"], region_name=endpoints["region"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    pool = endpoints["cognito"]["user_pool_id"]
    client_id = cognito.create_user_pool_client(UserPoolId=pool, ClientName="probe")["UserPoolClient"]["ClientId"]
    alice = endpoints["users"]["alice"]
    auth = cognito.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                 AuthParameters={"USERNAME": alice["email"], "PASSWORD": alice["password"]})
    assert auth["AuthenticationResult"]["IdToken"]


def test_ctrl_c_stops_every_process(sandbox):
    proc, state, endpoints = sandbox
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert "sandbox stopped" in proc.stderr.read()
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoints["s3"], timeout=2)

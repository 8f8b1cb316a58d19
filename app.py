#!/usr/bin/env python3
"""HelioCloud-as-code: one instance.yaml → the stacks of one HelioCloud instance.

Config: `cdk synth -c config=instances/foo.yaml`, or $HELIOCLOUD_CONFIG, or ./instance.yaml.
"""
import aws_cdk as cdk

from heliocloud.config import load_or_exit
from stacks.auth import AuthStack
from stacks.daskhub import DaskhubStack
from stacks.network import NetworkStack
from stacks.portal import PortalStack
from stacks.registry import RegistryStack
from stacks.security import add_security_checks

app = cdk.App()
config = load_or_exit(app.node.try_get_context("config"))
env = cdk.Environment(account=config.account, region=config.region)

network = NetworkStack(app, config.stack_name("Network"), config=config, env=env)
auth = AuthStack(app, config.stack_name("Auth"), config=config, env=env)
registry = RegistryStack(app, config.stack_name("Registry"), config=config, env=env) if config.enabled("registry") else None
daskhub = DaskhubStack(app, config.stack_name("Daskhub"), config=config, network=network, auth=auth, env=env) if config.enabled("daskhub") else None
portal = PortalStack(app, config.stack_name("Portal"), config=config, network=network, auth=auth, env=env) if config.enabled("portal") else None

for key, value in config.tags.items():
    cdk.Tags.of(app).add(key, value)
add_security_checks(app)
app.synth()

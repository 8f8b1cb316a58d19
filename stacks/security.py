"""cdk-nag AwsSolutions checks and the one way to acknowledge a finding.

cdk-nag 3 runs as a CDK policy-validation plugin (``Validations.of(app)``); every finding fails
synth unless acknowledged on the construct it concerns, one finding id at a time, with a reason
that says why the rule does not apply there. There is deliberately no blanket acknowledgement.
"""
from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_security_checks(app: cdk.App) -> None:
    """Run cdk-nag AwsSolutions on every stack of the app at synth."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope``.

    ``reason`` must explain why this exact finding is acceptable here; short reasons are refused
    so that an acknowledgement can never be a shrug.
    """
    if len(reason.split()) < 6:
        raise ValueError(f"acknowledgement of {finding} needs a real reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))

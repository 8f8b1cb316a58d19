"""IAM roles for Kubernetes service accounts (IRSA) that something else creates (EKS add-ons)."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct


def irsa_role(scope: Construct, construct_id: str, *, cluster: eks.Cluster, namespace: str,
              service_account: str, **role_kwargs) -> iam.Role:
    """A role only ``system:serviceaccount:<namespace>:<service_account>`` of ``cluster`` can assume."""
    provider = cluster.open_id_connect_provider
    issuer = provider.open_id_connect_provider_issuer
    conditions = cdk.CfnJson(scope, f"{construct_id}Conditions", value={
        f"{issuer}:aud": "sts.amazonaws.com",
        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
    })
    return iam.Role(scope, construct_id,
                    assumed_by=iam.OpenIdConnectPrincipal(provider).with_conditions({"StringEquals": conditions}),
                    **role_kwargs)

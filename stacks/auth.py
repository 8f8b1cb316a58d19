"""Auth: the one Cognito user pool of the instance.

The portal and the Daskhub each add their own app client to this pool, so a researcher has one
account for everything. The pool holds the users, so it is retained if the stack is deleted.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from heliocloud.config import InstanceConfig
from stacks.security import acknowledge

ADMINS_GROUP = "admins"


class AuthStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InstanceConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, description=f"HelioCloud {config.name}: users", **kwargs)
        auth = config.auth
        self_signup = auth["self_signup"] == "admin-approval"
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=f"{config.name}-users",
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            standard_attributes=cognito.StandardAttributes(email=cognito.StandardAttribute(required=True, mutable=True)),
            self_sign_up_enabled=self_signup,
            # No automatic verification: a self-signed-up account stays UNCONFIRMED until an admin
            # approves it (`heliocloud users approve`), which is what "admin approval" means.
            auto_verify=cognito.AutoVerifiedAttrs(email=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=auth["password_min_length"],
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=cdk.Duration.days(7),
            ),
            mfa=_MFA[auth["mfa"]],
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.domain = self.user_pool.add_domain(
            "HostedUi", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=config.domain_prefix)
        )
        self.admins_group = cognito.CfnUserPoolGroup(
            self,
            "AdminsGroup",
            user_pool_id=self.user_pool.user_pool_id,
            group_name=ADMINS_GROUP,
            description="HelioCloud instance admins (all users' spend, budgets, Daskhub admin)",
        )
        for index, email in enumerate(auth["admins"]):
            user = cognito.CfnUserPoolUser(
                self,
                f"Admin{index}",
                user_pool_id=self.user_pool.user_pool_id,
                username=email,
                user_attributes=[
                    cognito.CfnUserPoolUser.AttributeTypeProperty(name="email", value=email),
                    cognito.CfnUserPoolUser.AttributeTypeProperty(name="email_verified", value="true"),
                ],
                desired_delivery_mediums=["EMAIL"],
            )
            attachment = cognito.CfnUserPoolUserToGroupAttachment(
                self,
                f"Admin{index}InGroup",
                user_pool_id=self.user_pool.user_pool_id,
                username=email,
                group_name=ADMINS_GROUP,
            )
            attachment.add_dependency(user)
            attachment.add_dependency(self.admins_group)

        if auth["mfa"] != "required":
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG2",
                "MFA is the admin's choice in instance.yaml (auth.mfa); this instance offers TOTP as optional",
            )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "Threat protection needs the paid Plus feature plan (per-MAU charge); strong passwords, optional TOTP and "
            "admin-controlled sign-up are the baseline here",
        )

        cdk.CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id, description="Cognito user pool")
        cdk.CfnOutput(self, "HostedUiUrl", value=self.domain.base_url(), description="Sign-in page")


_MFA = {"off": cognito.Mfa.OFF, "optional": cognito.Mfa.OPTIONAL, "required": cognito.Mfa.REQUIRED}

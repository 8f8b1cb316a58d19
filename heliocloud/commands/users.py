"""`heliocloud users add|list|disable|approve`: manage the instance's Cognito users.

The pool is found from the `<instance>-Auth` stack's `UserPoolId` output, or given with
--user-pool-id (e.g. the sandbox's, from endpoints.json). Honours AWS_ENDPOINT_URL.
"""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from heliocloud import aws
from heliocloud.commands import add_config_option
from heliocloud.config import load_or_exit

ADMINS_GROUP = "admins"


def register(sub) -> None:
    p = sub.add_parser("users", help="add, list, disable or approve users")
    add_config_option(p)
    p.add_argument("--user-pool-id", help="Cognito user pool id (default: from the <instance>-Auth stack)")
    p.add_argument("--region", help="AWS region (default: instance.region or the AWS default)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a user (Cognito mails a temporary password)")
    add.add_argument("email")
    add.add_argument("--admin", action="store_true", help="also put the user in the admins group")
    actions.add_parser("list", help="list users with status and groups")
    disable = actions.add_parser("disable", help="disable a user (sign-in refused; data kept)")
    disable.add_argument("email")
    approve = actions.add_parser("approve", help="confirm a self-signed-up user (admin-approval mode)")
    approve.add_argument("email")
    p.set_defaults(func=run)


def user_pool_id(cloudformation, stack_name: str) -> str:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return next(o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == "UserPoolId")


def run(args) -> int:
    config = load_or_exit(args.config)
    region = args.region or config.region
    cognito = aws.client("cognito-idp", region=region)
    pool = args.user_pool_id or user_pool_id(aws.client("cloudformation", region=region), config.stack_name("Auth"))
    if args.action == "add":
        cognito.admin_create_user(
            UserPoolId=pool,
            Username=args.email,
            UserAttributes=[{"Name": "email", "Value": args.email}, {"Name": "email_verified", "Value": "true"}],
            DesiredDeliveryMediums=["EMAIL"],
        )
        if args.admin:
            cognito.admin_add_user_to_group(UserPoolId=pool, Username=args.email, GroupName=ADMINS_GROUP)
        print(f"added {args.email}{' (admin)' if args.admin else ''}; Cognito mails a temporary password")
    elif args.action == "disable":
        cognito.admin_disable_user(UserPoolId=pool, Username=args.email)
        print(f"disabled {args.email}")
    elif args.action == "approve":
        cognito.admin_confirm_sign_up(UserPoolId=pool, Username=args.email)
        print(f"approved {args.email}")
    else:
        print_users(cognito, pool)
    return 0


def print_users(cognito, pool: str) -> None:
    admins = {
        u["Username"]
        for page in cognito.get_paginator("list_users_in_group").paginate(UserPoolId=pool, GroupName=ADMINS_GROUP)
        for u in page["Users"]
    }
    table = Table(title=f"users of {pool}")
    for column in ("email", "status", "enabled", "admin", "created"):
        table.add_column(column)
    for page in cognito.get_paginator("list_users").paginate(UserPoolId=pool):
        for user in page["Users"]:
            attrs = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
            table.add_row(
                attrs.get("email", user["Username"]),
                user["UserStatus"],
                "yes" if user["Enabled"] else "no",
                "yes" if user["Username"] in admins else "",
                user["UserCreateDate"].strftime("%Y-%m-%d"),
            )
    Console(file=sys.stdout).print(table)

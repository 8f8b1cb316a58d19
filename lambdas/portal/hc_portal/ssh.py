"""How a researcher reaches a VM: the SSH login user per OS family, and the commands to show."""
from __future__ import annotations

SSH_USERS = {
    "amazon-linux": "ec2-user",
    "rhel": "ec2-user",
    "fedora": "fedora",
    "centos": "centos",
    "rocky": "rocky",
    "suse": "ec2-user",
    "ubuntu": "ubuntu",
    "debian": "admin",
}


def ssh_user(os_family: str) -> str:
    return SSH_USERS.get(os_family, "ec2-user")


def ssh_command(*, os_family: str, host: str | None, key_name: str | None) -> str | None:
    """``ssh -i ~/.ssh/KEY.pem USER@HOST``, or None while the VM has no address."""
    if not host:
        return None
    key = f"-i ~/.ssh/{key_name}.pem " if key_name else ""
    return f"ssh {key}{ssh_user(os_family)}@{host}"


def session_manager_command(instance_id: str, region: str) -> str:
    """Works with no open port at all (the default: no SSH CIDRs configured)."""
    return f"aws ssm start-session --target {instance_id} --region {region}"

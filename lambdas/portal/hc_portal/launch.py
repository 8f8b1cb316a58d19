"""The RunInstances request for a validated launch: tags on everything it creates."""
from __future__ import annotations

import hashlib

from hc_portal.settings import Settings
from hc_portal.validation import LaunchRequest

OWNER_TAG = "Owner"
PORTAL_TAG = "heliocloud:portal"
INSTANCE_TAG = "heliocloud:instance"  # the cost-allocation tag every stack resource carries too


def ec2_key_name(owner: str, name: str) -> str:
    """EC2 key pair names are account-wide: prefix the user's id so names never collide."""
    return f"hc-{owner}-{name}"


def tags(owner: str, name: str, settings: Settings, **extra: str) -> list[dict]:
    base = {"Name": name, OWNER_TAG: owner, PORTAL_TAG: settings.portal_name, INSTANCE_TAG: settings.portal_name, **extra}
    return [{"Key": k, "Value": v} for k, v in base.items()]


def pick_subnet(settings: Settings, owner: str, name: str) -> str | None:
    """Spread VMs over the configured subnets (AZs), stably per (owner, name)."""
    if not settings.subnet_ids:
        return None
    digest = int(hashlib.sha256(f"{owner}/{name}".encode()).hexdigest(), 16)
    return settings.subnet_ids[digest % len(settings.subnet_ids)]


def run_instances_request(*, settings: Settings, owner: str, request: LaunchRequest, image_id: str,
                          root_device: str, client_token: str) -> dict:
    image = settings.image(request.image)
    tag_list = tags(owner, request.name, settings, **{"heliocloud:image": request.image, "heliocloud:os": image["os"]})
    spec = {
        "ImageId": image_id,
        "InstanceType": request.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": client_token,
        "BlockDeviceMappings": [{"DeviceName": root_device, "Ebs": {
            "VolumeSize": request.volume_gb, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}],
        # IMDSv2 only: credentials of the instance profile cannot be read by a simple SSRF.
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "TagSpecifications": [{"ResourceType": kind, "Tags": tag_list}
                              for kind in ("instance", "volume", "network-interface")],
    }
    if request.key_name:
        spec["KeyName"] = ec2_key_name(owner, request.key_name)
    subnet = pick_subnet(settings, owner, request.name)
    if subnet:
        spec["SubnetId"] = subnet
    if settings.security_group_id:
        spec["SecurityGroupIds"] = [settings.security_group_id]
    if settings.instance_profile_arn:
        spec["IamInstanceProfile"] = {"Arn": settings.instance_profile_arn}
    return spec

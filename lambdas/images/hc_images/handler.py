"""The `Custom::ResearcherImages` handlers (custom_resources.Provider): on_event starts a
CodeBuild build of the images the resource names, is_complete waits for it.

Resource properties (all strings): ProjectName, SourceLocation (`bucket/key` of the zipped
helm/images folder), RepositoryUri, ImageTags ({kind: tag}, e.g. {"cpu": "cpu-<hash>"}).

The build gets every value from the event, not from the project, so a CloudFormation rollback
(which resets this resource before the project) builds, or finds in ECR, the previous images.
Delete does nothing: images outlive the resource so running notebooks keep theirs; the
repository's own removal policy decides what happens to them.

Pure functions first (unit-tested); the boto3 shell at the end.
"""
from __future__ import annotations

import json
from urllib.parse import quote

SUCCEEDED = "SUCCEEDED"
IN_PROGRESS = "IN_PROGRESS"


class BuildFailed(Exception):
    """The image build ended in a state other than SUCCEEDED; fails the deploy."""


def images_of(properties: dict) -> tuple:
    """What a build produces: the repository and the tag of each kind."""
    return properties.get("RepositoryUri"), tuple(sorted((properties.get("ImageTags") or {}).items()))


def start_build_request(event: dict) -> dict | None:
    """StartBuild parameters for this event, or None when there is nothing to build: Delete,
    or an Update that names the same images as before (e.g. only the project was renamed)."""
    kind = event["RequestType"]
    properties = event["ResourceProperties"]
    if kind == "Delete":
        return None
    if kind == "Update" and images_of(properties) == images_of(event.get("OldResourceProperties") or {}):
        return None
    variables = {"REPOSITORY_URI": properties["RepositoryUri"]}
    variables |= {f"{image_kind.upper()}_TAG": tag for image_kind, tag in sorted(properties["ImageTags"].items())}
    return {
        "projectName": properties["ProjectName"],
        "sourceLocationOverride": properties["SourceLocation"],
        "environmentVariablesOverride": [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()],
        # The provider framework may invoke on_event again for the same request: one build.
        "idempotencyToken": event["RequestId"][:64],
    }


def on_event_response(event: dict, build_id: str | None) -> dict:
    """The provider's answer: a physical id that stays the same across updates (an update never
    replaces the resource) and the build to wait for, if any."""
    if event["RequestType"] == "Create":
        physical_id = event["ResourceProperties"]["RepositoryUri"]
    else:
        physical_id = event["PhysicalResourceId"]
    return {"PhysicalResourceId": physical_id, "Data": {"BuildId": build_id} if build_id else {}}


def build_id_of(event: dict) -> str | None:
    """The build on_event started (is_complete receives on_event's Data in the event)."""
    return (event.get("Data") or {}).get("BuildId")


def build_console_url(build: dict) -> str:
    """The CodeBuild console page of a build, from its ARN
    (arn:<partition>:codebuild:<region>:<account>:build/<project>:<uuid>)."""
    _, _, _, region, account, resource = build["arn"].split(":", 5)
    build_id = resource.split("/", 1)[1]
    project = build_id.split(":", 1)[0]
    return (f"https://{region}.console.aws.amazon.com/codesuite/codebuild/{account}/projects/{project}"
            f"/build/{quote(build_id, safe='')}/?region={region}")


def failure_message(build: dict) -> str:
    """Why the deploy fails: the build's status, the phase that failed and what it said, and
    where to read the log."""
    status = build.get("buildStatus", "UNKNOWN")
    failed = [p for p in build.get("phases") or [] if p.get("phaseStatus") not in (None, SUCCEEDED)]
    where = ""
    if failed:
        phase = failed[0]
        said = "; ".join(c["message"] for c in phase.get("contexts") or [] if c.get("message"))
        where = f" in phase {phase.get('phaseType')}" + (f" ({said})" if said else "")
    logs = (build.get("logs") or {}).get("deepLink") or build_console_url(build)
    return f"researcher image build {build['id']} ended {status}{where}; logs: {logs}"


def completion(build: dict | None, build_id: str) -> dict:
    """is_complete's answer for the build's current state. Raising fails the deploy with the
    message as CloudFormation's status reason."""
    if build is None:
        raise BuildFailed(f"researcher image build {build_id} not found")
    status = build.get("buildStatus")
    if status == SUCCEEDED:
        return {"IsComplete": True}
    if status == IN_PROGRESS:
        return {"IsComplete": False}
    raise BuildFailed(failure_message(build))  # FAILED, FAULT, STOPPED, TIMED_OUT


# ----------------------------------------------------------------------------- boto3 shell
def _codebuild():
    import boto3

    return boto3.client("codebuild")


def on_event(event: dict, _context=None) -> dict:
    request = start_build_request(event)
    build_id = _codebuild().start_build(**request)["build"]["id"] if request else None
    print(json.dumps({"request": event["RequestType"], "build": build_id}))
    return on_event_response(event, build_id)


def is_complete(event: dict, _context=None) -> dict:
    build_id = build_id_of(event)
    if build_id is None:
        return {"IsComplete": True}
    builds = _codebuild().batch_get_builds(ids=[build_id])["builds"]
    build = builds[0] if builds else None
    print(json.dumps({"build": build_id, "status": build and build.get("buildStatus"),
                      "phase": build and build.get("currentPhase")}))
    return completion(build, build_id)

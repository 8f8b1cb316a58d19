"""The researcher images, built inside the account at deploy time: an ECR repository, a CodeBuild
project, and a custom resource that starts the build and waits for it to succeed.

Built in the account so that `cdk synth` and `cdk deploy` need no Docker: synth only zips
helm/images/ (the environment spec and a Dockerfile per image) as an S3 asset. The tags are
`cpu-<hash>` and `gpu-<hash>`, 12 hex digits of that folder's content computed at synth time:
a changed spec gives new tags, the hub's values name them, and notebooks roll forward; an
unchanged spec starts no build.
"""
from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import custom_resources as cr
from constructs import Construct

from heliocloud.daskhub import IMAGE_KINDS, IMAGES_DIR, image_spec_hash
from stacks.security import acknowledge

LAMBDA_ASSET = Path(__file__).resolve().parents[2] / "lambdas" / "images"
# Per kind: enough to roll back a few spec changes; each GPU image is several GB of ECR storage.
IMAGES_KEPT_PER_KIND = 5
BUILD_TIMEOUT = cdk.Duration.hours(2)
# CloudFormation waits at most an hour for a custom resource; the provider gives up a little
# earlier so the deploy fails with the provider's message rather than CloudFormation's. A build
# still running then finishes and pushes; the next deploy finds its tags in ECR and is quick.
WAIT_FOR_BUILD = cdk.Duration.minutes(55)
BUILD_POLL_INTERVAL = cdk.Duration.seconds(30)


def image_tags(context: Path = IMAGES_DIR) -> dict[str, str]:
    """{kind: tag} of the images built from ``context``: `<kind>-<12 hex of its content>`."""
    spec_hash = image_spec_hash(context)
    return {kind: f"{kind}-{spec_hash}" for kind in IMAGE_KINDS}


class ResearcherImages(Construct):
    """The CPU and GPU researcher images of helm/images/, in an ECR repository of this stack.

    ``image(kind)`` is what the Helm values need; ``ready`` is the custom resource that
    completes when both images are in the repository: make the hub and gateway releases
    depend on it, so no pod is started on a tag that does not exist yet.
    """

    def __init__(self, scope: Construct, construct_id: str, *, repository_name: str) -> None:
        super().__init__(scope, construct_id)
        self.tags = image_tags()
        self.repository = ecr.Repository(
            self, "Repository",
            repository_name=repository_name,
            image_scan_on_push=True,
            # A tag names a content hash: it must never point at another image.
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            lifecycle_rules=[
                *(ecr.LifecycleRule(rule_priority=i + 1, tag_status=ecr.TagStatus.TAGGED,
                                    tag_prefix_list=[f"{kind}-"], max_image_count=IMAGES_KEPT_PER_KIND,
                                    description=f"keep the {IMAGES_KEPT_PER_KIND} newest {kind} images")
                  for i, kind in enumerate(IMAGE_KINDS)),
                ecr.LifecycleRule(rule_priority=len(IMAGE_KINDS) + 1, tag_status=ecr.TagStatus.UNTAGGED,
                                  max_image_age=cdk.Duration.days(7), description="drop untagged leftovers"),
            ],
            # Derived artefacts: any deploy rebuilds them from helm/images/. Retaining them would
            # leave GBs billed after the instance is gone, and a re-created instance would fail
            # on the repository name that still exists.
            removal_policy=cdk.RemovalPolicy.DESTROY,
            empty_on_delete=True,
        )
        self.context = s3_assets.Asset(self, "BuildContext", path=str(IMAGES_DIR))
        self.project = self._build_project()
        self.ready = self._build_on_deploy()

    def image(self, kind: str) -> dict[str, str]:
        """{name, tag} of the image of that kind (cpu | gpu), as the Helm charts take an image."""
        if kind not in self.tags:
            raise ValueError(f"image kind must be one of {', '.join(IMAGE_KINDS)}, got {kind!r}")
        return {"name": self.repository.repository_uri, "tag": self.tags[kind]}

    def _build_project(self) -> codebuild.Project:
        """CodeBuild running helm/images/buildspec.yml with Docker. Its role is written out in
        full (CDK adds nothing to it): read this asset, write its log group, push to this
        repository."""
        self.build_logs = logs.LogGroup(self, "BuildLogs", retention=logs.RetentionDays.ONE_MONTH,
                                        removal_policy=cdk.RemovalPolicy.DESTROY)
        role = iam.Role(self, "BuildRole", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
                        description="Builds the researcher images and pushes them to their ECR repository")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[self.build_logs.log_group_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"],
                                               resources=[self.context.bucket.arn_for_objects(self.context.s3_object_key)]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetBucketLocation", "s3:GetBucketAcl"],
                                               resources=[self.context.bucket.bucket_arn]))
        self.repository.grant_pull_push(role)
        self.repository.grant(role, "ecr:DescribeImages")  # build.sh skips tags already pushed
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                    "ecr:GetAuthorizationToken (docker login) is account-wide and supports no resource scoping; "
                    "every push and pull is limited to this repository")
        project = codebuild.Project(
            self, "Build",
            description="Builds the HelioCloud researcher images (helm/images/) into ECR",
            source=codebuild.Source.s3(bucket=self.context.bucket, path=self.context.s3_object_key),
            build_spec=codebuild.BuildSpec.from_source_filename("buildspec.yml"),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                # 4 vCPU, 7 GB, 128 GB disk: room for the GPU image's CUDA wheels and layers.
                compute_type=codebuild.ComputeType.MEDIUM,
                privileged=True,  # docker build needs the Docker daemon
            ),
            environment_variables={
                "REPOSITORY_URI": codebuild.BuildEnvironmentVariable(value=self.repository.repository_uri),
                **{f"{kind.upper()}_TAG": codebuild.BuildEnvironmentVariable(value=tag)
                   for kind, tag in self.tags.items()},
            },
            timeout=BUILD_TIMEOUT,
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.build_logs)),
            role=role.without_policy_updates(),
        )
        project.node.add_dependency(role)  # the policy must exist before the first build
        acknowledge(project, "AwsSolutions-CB3",
                    "Building container images needs the Docker daemon, which CodeBuild runs only in privileged "
                    "mode; the build runs only this repository's Dockerfiles")
        acknowledge(project, "AwsSolutions-CB4",
                    "The project has no build artifacts (images go to ECR, encrypted at rest there), and a customer "
                    "managed KMS key would cost a monthly fee on an idle instance")
        return project

    def _build_on_deploy(self) -> cdk.CustomResource:
        """`Custom::ResearcherImages`: on create, or when the tags change, start a build and
        wait for SUCCEEDED; any other end fails the deploy with the build's status and log link."""
        start = self._function("StartBuild", "on_event", "Starts the researcher image build of a deploy",
                               "codebuild:StartBuild")
        wait = self._function("WaitForBuild", "is_complete", "Reports whether the researcher image build is done",
                              "codebuild:BatchGetBuilds")
        framework_logs = logs.LogGroup(self, "ProviderLogs", retention=logs.RetentionDays.ONE_MONTH,
                                       removal_policy=cdk.RemovalPolicy.DESTROY)
        provider = cr.Provider(
            self, "BuildProvider",
            on_event_handler=start, is_complete_handler=wait,
            query_interval=BUILD_POLL_INTERVAL, total_timeout=WAIT_FOR_BUILD,
            log_group=framework_logs,
            framework_on_event_role=self._lambda_role("ProviderOnEventRole", framework_logs,
                                                      "Provider framework: hands the image build request to StartBuild"),
            framework_complete_and_timeout_role=self._lambda_role(
                "ProviderWaitRole", framework_logs, "Provider framework: polls WaitForBuild until the build ends"),
        )
        self._acknowledge_provider(provider, start, wait)
        return cdk.CustomResource(
            self, "Images",
            service_token=provider.service_token,
            resource_type="Custom::ResearcherImages",
            properties={
                "ProjectName": self.project.project_name,
                "SourceLocation": f"{self.context.s3_bucket_name}/{self.context.s3_object_key}",
                "RepositoryUri": self.repository.repository_uri,
                "ImageTags": dict(self.tags),
            },
        )

    def _lambda_role(self, construct_id: str, log_group: logs.ILogGroup, description: str) -> iam.Role:
        """A Lambda role that may write only to ``log_group`` (no managed policy)."""
        role = iam.Role(self, construct_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=description)
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[log_group.log_group_arn]))
        return role

    def _function(self, construct_id: str, handler: str, description: str, action: str) -> lambda_.Function:
        """One handler of lambdas/images, allowed ``action`` on this project's builds only."""
        log_group = logs.LogGroup(self, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        role = self._lambda_role(f"{construct_id}Role", log_group, description)
        role.add_to_policy(iam.PolicyStatement(actions=[action], resources=[self.project.project_arn]))
        function = lambda_.Function(
            self, construct_id,
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"hc_images.handler.{handler}",
            code=lambda_.Code.from_asset(str(LAMBDA_ASSET), exclude=["__pycache__", "*.pyc"]),
            timeout=cdk.Duration.seconds(30),
            memory_size=128,
            role=role,
            log_group=log_group,
        )
        acknowledge(function, "AwsSolutions-L1",
                    "The image build handlers are pinned to python3.12, the runtime their code and tests are checked against")
        return function

    def _acknowledge_provider(self, provider: cr.Provider, start: lambda_.Function, wait: lambda_.Function) -> None:
        """Findings on the constructs custom_resources.Provider creates for itself."""
        stack = cdk.Stack.of(self)
        for role in ("ProviderOnEventRole", "ProviderWaitRole"):
            for function in (start, wait):
                arn = stack.get_logical_id(function.node.default_child)
                acknowledge(self.node.find_child(role), f"AwsSolutions-IAM5[Resource::<{arn}.Arn>:*]",
                            "The provider framework grants its functions invoke on any version of the two image "
                            "build handlers, and on nothing else")
        waiter = provider.node.find_child("waiter-state-machine")
        for child in ("framework-isComplete", "framework-onTimeout"):
            arn = stack.get_logical_id(provider.node.find_child(child).node.default_child)
            acknowledge(waiter, f"AwsSolutions-IAM5[Resource::<{arn}.Arn>:*]",
                        "The provider's waiter state machine may invoke any version of the framework's own functions")
        acknowledge(waiter, "AwsSolutions-SF1",
                    "The waiter only retries one Lambda task; Step Functions keeps its execution history, and every "
                    "poll with the build status is in the WaitForBuild function's log group")
        acknowledge(waiter, "AwsSolutions-SF2",
                    "X-Ray traces of a single retried Lambda task would say nothing the build's own log does not")
        for child in ("framework-onEvent", "framework-isComplete", "framework-onTimeout"):
            acknowledge(provider.node.find_child(child), "AwsSolutions-L1",
                        "The runtime of the provider framework's own functions is chosen by aws-cdk-lib and upgraded with it")

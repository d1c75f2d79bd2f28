"""The artifact store: a KMS-encrypted, TLS-only, private bucket shared by every action."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


class ArtifactStore(Construct):
    """Holds the pipeline's artifacts and the packaged template's code, encrypted with a rotating key."""

    def __init__(self, scope: Construct, construct_id: str, *, service_name: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the {service_name} release pipeline's artifacts and notifications",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                # Releases need their artifacts for days, not forever; rollbacks re-use recent ones.
                s3.LifecycleRule(
                    expiration=Duration.days(90), noncurrent_version_expiration=Duration.days(30)
                ),
            ],
        )

    def allow_service(self, *, service_principal: str, region: str) -> None:
        """Let an AWS service (e.g. CodeStar Notifications) encrypt messages for an SNS topic."""
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(service_principal)],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
            )
        )

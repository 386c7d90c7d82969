"""The least-privilege IAM policy of ``mlops deploy --target sagemaker-mme`` for one endpoint.

Resources are scoped to the endpoint's names (its model and config names start with the endpoint
name), its S3 prefix and its execution role; the account comes from the role's ARN. Application
Auto Scaling and ``cloudwatch:DescribeAlarms`` do not support resource-level permissions beyond
what is written here; ``cloudwatch:GetMetricData`` (read by ``mlops status``) supports none, so its
resource is ``*``. ``sagemaker:InvokeEndpoint`` is there for the deploy's warmup.
"""

from __future__ import annotations

from typing import Any

from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec


def iam_policy(
    spec: EndpointSpec, *, region: str | None = None, components: bool = False
) -> dict[str, Any]:
    """The policy of a multi-model endpoint, or with ``components`` of an endpoint of inference
    components (target sagemaker-ic)."""
    role = spec.require_role("sagemaker-ic" if components else "sagemaker-mme")
    partition, account = role.split(":")[1], role.split(":")[4]
    where = region or spec.region or "*"
    sagemaker = f"arn:{partition}:sagemaker:{where}:{account}"
    cloudwatch = f"arn:{partition}:cloudwatch:{where}:{account}"
    name = spec.name
    bucket_arn = f"arn:{partition}:s3:::{spec.bucket}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "MultiModelEndpoint",
            "Effect": "Allow",
            "Action": [
                "sagemaker:CreateModel",
                "sagemaker:DescribeModel",
                "sagemaker:DeleteModel",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DeleteEndpointConfig",
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DeleteEndpoint",
                "sagemaker:AddTags",
                "sagemaker:InvokeEndpoint",
            ],
            "Resource": [
                f"{sagemaker}:model/{name[:54]}-*",
                f"{sagemaker}:endpoint-config/{name[:54]}-*",
                f"{sagemaker}:endpoint/{name}",
            ],
        },
        {
            "Sid": "PassExecutionRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role,
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
        {
            "Sid": "ModelTarballs",
            "Effect": "Allow",
            "Action": [
                "s3:PutObject",
                "s3:GetObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
            ],
            "Resource": f"{bucket_arn}/{spec.key_prefix}*",
        },
        {
            "Sid": "ListModelTarballs",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{spec.key_prefix}*"]}},
        },
    ]
    if components:
        statements.append(
            {
                # Component names derive from model and version, not the endpoint: the
                # resource is every component of the account and region.
                "Sid": "InferenceComponents",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateInferenceComponent",
                    "sagemaker:DescribeInferenceComponent",
                    "sagemaker:UpdateInferenceComponent",
                    "sagemaker:DeleteInferenceComponent",
                    "sagemaker:AddTags",
                    "sagemaker:InvokeEndpoint",
                ],
                "Resource": f"{sagemaker}:inference-component/*",
            }
        )
        statements[0]["Sid"] = "Endpoint"
    if spec.autoscaling is not None or components:
        statements += [
            {
                "Sid": "Autoscaling",
                "Effect": "Allow",
                "Action": [
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DescribeScalingPolicies",
                    *(["application-autoscaling:DeregisterScalableTarget"] if components else []),
                ],
                "Resource": "*",
            },
            {
                "Sid": "AutoscalingServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": f"arn:{partition}:iam::{account}:role/aws-service-role/"
                "sagemaker.application-autoscaling.amazonaws.com/*",
                "Condition": {
                    "StringLike": {
                        "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                    }
                },
            },
        ]
    if spec.alarms.enabled:
        statements.append(
            {
                "Sid": "Alarms",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
                "Resource": f"{cloudwatch}:alarm:{name}-*",
            }
        )
    statements.append(
        {
            "Sid": "EndpointMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:GetMetricData",
            "Resource": "*",
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


__all__ = ["iam_policy"]

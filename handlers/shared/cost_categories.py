"""Maps Cost Explorer service names to the API's cost categories (pure)."""

from __future__ import annotations

CATEGORIES = ("compute", "storage", "networking", "other")

_BY_SERVICE = {
    "compute": (
        "Amazon Elastic Compute Cloud - Compute",
        "EC2 - Other",
        "AWS Lambda",
        "Amazon Elastic Container Service",
        "Amazon Elastic Container Service for Kubernetes",
        "Amazon Elastic Kubernetes Service",
        "AWS Fargate",
        "AWS Batch",
        "Amazon SageMaker",
        "Amazon EC2 Container Registry (ECR)",
        "Amazon Relational Database Service",
    ),
    "storage": (
        "Amazon Simple Storage Service",
        "Amazon Elastic Block Store",
        "Amazon Elastic File System",
        "Amazon FSx",
        "AWS Backup",
        "Amazon S3 Glacier",
        "Amazon DynamoDB",
    ),
    "networking": (
        "Amazon Virtual Private Cloud",
        "Amazon CloudFront",
        "Amazon Route 53",
        "AWS Data Transfer",
        "Amazon API Gateway",
        "Amazon Elastic Load Balancing",
        "AWS Direct Connect",
        "AWS Global Accelerator",
        "AWS Transit Gateway",
    ),
}
SERVICE_CATEGORY = {
    service: category for category, services in _BY_SERVICE.items() for service in services
}


def category_of(service: str) -> str:
    """Every service falls in exactly one category; unknown ones in `other`."""
    return SERVICE_CATEGORY.get(service, "other")

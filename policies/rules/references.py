"""Turning the ways resources refer to each other (ARNs, URLs, names) into names.

Components pass a function's name to one resource and its ARN to another; rules
compare names, so every reference is reduced to the name it points at.
"""

from __future__ import annotations

from typing import Any

from .framework import UNKNOWN


def _reference(value: Any) -> Any:
    """The reference as a string, `UNKNOWN` during preview, or None when absent."""
    if value is UNKNOWN:
        return UNKNOWN
    return value if isinstance(value, str) else None


def function_name(value: Any) -> Any:
    """`arn:aws:lambda:...:function:NAME[:qualifier]` or NAME -> NAME."""
    ref = _reference(value)
    if not isinstance(ref, str):
        return ref
    if ":function:" in ref:
        return ref.split(":function:", 1)[1].split(":", 1)[0]
    return ref


def queue_name(value: Any) -> Any:
    """`arn:aws:sqs:region:account:NAME`, `https://sqs.../account/NAME` or NAME -> NAME."""
    ref = _reference(value)
    if not isinstance(ref, str):
        return ref
    if ref.startswith("arn:"):
        return ref.rsplit(":", 1)[1]
    if "://" in ref:
        return ref.rstrip("/").rsplit("/", 1)[1]
    return ref


def topic_name(value: Any) -> Any:
    """`arn:aws:sns:region:account:NAME` or NAME -> NAME."""
    ref = _reference(value)
    if not isinstance(ref, str):
        return ref
    return ref.rsplit(":", 1)[1] if ref.startswith("arn:") else ref


def role_name(value: Any) -> Any:
    """`arn:aws:iam::account:role/path/NAME` or NAME -> NAME."""
    ref = _reference(value)
    if not isinstance(ref, str):
        return ref
    return ref.rsplit("/", 1)[1] if ref.startswith("arn:") else ref


def log_group_name(value: Any) -> Any:
    """`arn:aws:logs:region:account:log-group:NAME[:*]` or NAME -> NAME."""
    ref = _reference(value)
    if not isinstance(ref, str):
        return ref
    if ":log-group:" in ref:
        return ref.split(":log-group:", 1)[1].removesuffix(":*")
    return ref


def bucket_name(value: Any) -> Any:
    """`arn:aws:s3:::NAME` or NAME (a bucket's id is its name) -> NAME."""
    ref = _reference(value)
    if not isinstance(ref, str):
        return ref
    return ref.removeprefix("arn:aws:s3:::").split("/", 1)[0]

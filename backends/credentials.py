"""Credential checks for the cloud backends: fast, offline, and silent about secrets.

Each check reads only the standard configuration chain of its SDK (environment variables and
config files), never contacts a server, and returns ``None`` when the backend can be used or a
message naming what to set. Messages name variables and files, never their values. The checks
take the backend options because local simulators and mock samplers need no credentials.
SDKs are imported inside the functions so that listing backends stays cheap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["arn_region", "braket_problem", "dwave_problem", "ibm_problem"]

# Besides a key pair, these make boto3 fetch credentials on first use.
_AWS_ENV = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
# Profile keys from which boto3 derives credentials without them being stored in the profile.
_AWS_PROFILE_KEYS = (
    "aws_access_key_id",
    "role_arn",
    "credential_process",
    "credential_source",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
)


def dwave_problem(options: Mapping[str, Any] | None = None) -> str | None:
    """A D-Wave token from ``DWAVE_API_TOKEN`` or the dwave config file (profile ``profile``)."""
    options = options or {}
    if options.get("qpu_sampler") is not None or options.get("cqm_sampler") is not None:
        return None
    if os.environ.get("DWAVE_API_TOKEN"):
        return None
    hint = "set DWAVE_API_TOKEN or run `dwave config create`"
    try:
        from dwave.cloud.config import load_config
        from dwave.cloud.config.exceptions import ConfigFileError
    except ImportError:
        return hint
    profile = options.get("profile")
    try:
        config = load_config(profile=profile)
    except ConfigFileError:
        # The parser's message may quote a line of the file, token included: say only where.
        return (
            f"the dwave config file (DWAVE_CONFIG_FILE or `dwave config ls`) is unreadable; {hint}"
        )
    except ValueError:
        return f"dwave config profile {profile!r} not found; {hint}"
    return None if config.get("token") else hint


def arn_region(arn: str) -> str | None:
    """The region an AWS ARN names (``arn:aws:braket:eu-north-1::device/...``), if any."""
    parts = str(arn).split(":")
    return parts[3] or None if len(parts) >= 6 else None


def braket_problem(options: Mapping[str, Any] | None = None) -> str | None:
    """AWS credentials and a region for a device ARN; the local simulator needs none."""
    options = options or {}
    arn = options.get("device_arn")
    if not arn:
        return None
    import botocore.exceptions
    import botocore.session

    profile = options.get("aws_profile")
    session = botocore.session.Session(profile=profile)
    try:
        scoped = session.get_scoped_config()
    except botocore.exceptions.ProfileNotFound:
        return f"AWS profile {profile or os.environ.get('AWS_PROFILE')!r} is not configured"
    key_pair = os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
    configured = any(os.environ.get(v) for v in _AWS_ENV) or any(
        k in scoped for k in _AWS_PROFILE_KEYS
    )
    if not (key_pair or configured):
        return (
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile "
            "of ~/.aws/credentials or ~/.aws/config (e.g. `aws configure` or `aws sso login`)"
        )
    region = (
        arn_region(arn) or os.environ.get("AWS_REGION") or session.get_config_variable("region")
    )
    if not region:
        return "set AWS_REGION (or AWS_DEFAULT_REGION, or `region` in ~/.aws/config)"
    return None


def ibm_problem(options: Mapping[str, Any] | None = None) -> str | None:
    """An IBM Quantum token from ``QISKIT_IBM_TOKEN`` or a saved account, for ``ibm_backend``."""
    options = options or {}
    if not options.get("ibm_backend") or os.environ.get("QISKIT_IBM_TOKEN"):
        return None
    saved = Path.home() / ".qiskit" / "qiskit-ibm.json"
    try:
        accounts = json.loads(saved.read_text())
    except (OSError, ValueError):
        accounts = None
    if isinstance(accounts, dict) and accounts:
        return None
    return (
        "set QISKIT_IBM_TOKEN (and QISKIT_IBM_INSTANCE) or save an account once with "
        "`QiskitRuntimeService.save_account(token=..., set_as_default=True)`"
    )

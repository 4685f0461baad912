"""Which AWS errors mean "your configuration is wrong" rather than "this object is bad".

A missing, unreadable or refused credential fails every request the same way: reporting it as a
failed bundle (exit 1) or retrying it forever hides the real problem. The operator tools let these
errors through to the command line, which prints one line and exits 2 (configuration).
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConfigNotFound,
    ConfigParseError,
    CredentialRetrievalError,
    InvalidConfigError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

CONFIGURATION_ERRORS: tuple[type[Exception], ...] = (
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ConfigParseError,
    ConfigNotFound,
    NoRegionError,
    CredentialRetrievalError,
    InvalidConfigError,
)
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "UnrecognizedClientException"}
)


def error_code(exc: ClientError) -> str:
    """The service's error code ('' when the response has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_configuration_error(exc: BaseException) -> bool:
    """True when the error is about credentials or configuration, not about the object at hand."""
    if isinstance(exc, CONFIGURATION_ERRORS):
        return True
    return isinstance(exc, ClientError) and error_code(exc) in CREDENTIAL_CODES

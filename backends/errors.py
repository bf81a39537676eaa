"""What can go wrong with a solver, as exceptions whose one-line message says what to do.

:class:`BackendError` means a backend cannot be used as asked (missing SDK, credentials, a bad
option, an answer that is not an answer): the run stops before or at that solve, and the loops
leave the model as it was before the failing step. :class:`SolveFailed` is the one failure a
run may go on after: a task the service itself failed, cancelled or timed out, which leaves its
block unchanged. :func:`cloud_message` turns an SDK's network or authentication error into one
line naming what to check, never the secret.
"""

from __future__ import annotations

__all__ = ["BackendError", "SolveFailed", "cloud_message"]


class BackendError(ValueError):
    """A backend cannot be used as asked; the message says what to do about it."""


class SolveFailed(BackendError):
    """One solve failed on the service's side (failed, cancelled or timed-out task, no feasible
    answer); its block stays as it was and the run may go on."""


# (exception class name, what to check) for the SDKs' errors a user can do something about.
_CLOUD_HINTS = {
    "NoRegionError": "no AWS region: set AWS_REGION, or use a device ARN that names its region",
    "NoCredentialsError": "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
    "AWS_PROFILE",
    "EndpointConnectionError": "the AWS endpoint is unreachable: check the network, the region "
    "and any proxy settings",
    "ConnectTimeoutError": "the connection to AWS timed out: check the network and the region",
    "ClientError": "AWS refused the request: check that the credentials are valid and allowed to "
    "use Amazon Braket in this region",
    "RequestTimeout": "D-Wave Leap did not answer in time: check the network, or try again later",
    "SolverAuthenticationError": "D-Wave Leap refused the token: check DWAVE_API_TOKEN or the "
    "dwave config file (`dwave config inspect`)",
    "SolverNotFoundError": "no such D-Wave solver for this token: check `solver=` and "
    "`dwave solvers`",
    "InvalidAPIResponseError": "D-Wave Leap sent an unexpected answer: check the endpoint and "
    "the token",
    "IBMNotAuthorizedError": "IBM Quantum refused the token: check QISKIT_IBM_TOKEN and "
    "QISKIT_IBM_INSTANCE",
    "IBMAccountError": "no usable IBM Quantum account: set QISKIT_IBM_TOKEN or save an account",
    "IBMBackendValueError": "no such IBM backend for this account: check ibm_backend=",
}


def cloud_message(error: BaseException, solver: str) -> str | None:
    """One line saying what to check for a known SDK error (``None`` if it is not one).

    Only the exception's class is read, never its text, which may quote a header or a token.
    """
    for cls in type(error).__mro__:
        hint = _CLOUD_HINTS.get(cls.__name__)
        if hint:
            return f"solver {solver!r}: {hint} ({type(error).__name__})"
    return None

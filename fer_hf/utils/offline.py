"""Reachability of the Hugging Face Hub, answered in seconds.

No machine this project is developed on reaches the Hub, so everything that needs it (hub datasets,
pretrained weights, pushes) first calls `require_hub`, which answers in seconds: from
`HF_HUB_OFFLINE`, or from one TCP connection with a short timeout, instead of huggingface_hub's
retry loop (~25 s per file) or, worse, a failed push at the end of a long run.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from huggingface_hub import constants


class HubUnreachableError(RuntimeError):
    """The Hub is needed for something but cannot be reached (offline mode or no network)."""


def hub_problem(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be used right now, or `None` if a connection to it opens."""
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1 is set"
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except OSError as err:
        return f"cannot connect to {url.hostname}:{port} ({err})"


def require_hub(what: str, instead: str, timeout: float = 3.0) -> None:
    """Raise `HubUnreachableError` naming `what` needed the Hub and what to do `instead`."""
    problem = hub_problem(timeout)
    if problem:
        raise HubUnreachableError(f"{what} needs the Hugging Face Hub, which is out of reach: {problem}. {instead}")

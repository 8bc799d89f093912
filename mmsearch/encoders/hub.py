"""Whether the Hugging Face hub can be reached: the families that load from its cache (OpenCLIP,
CLAP) ask before the hub client would retry for half a minute on a machine with no network."""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

HUB_PROBE_TIMEOUT_S = 3.0
"""How long to wait for a TCP connection to the hub before deciding we are offline. The hub
client itself retries a failing request five times with back-off (about 25 s per file), which
looks like a hang to a user with no network."""
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_TRUE = ("1", "true", "yes", "on")


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub can be reached, decided within about `timeout` seconds.

    Honours `HF_HUB_OFFLINE`, `TRANSFORMERS_OFFLINE` and a custom `HF_ENDPOINT`. Behind an
    HTTPS proxy the answer is always True: a direct connection says nothing about the proxy,
    so the hub client is left to try.

    Args:
        timeout: Seconds to wait for the TCP connection.

    Returns:
        False when offline mode is set or the endpoint cannot be connected to; else True.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in _TRUE:
        return False
    if any(os.environ.get(name) for name in _PROXY_VARS):
        return True
    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname
    if not host:
        return True
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError as exc:
        logger.info("Hugging Face hub at %s is not reachable (%s)", constants.ENDPOINT, exc)
        return False

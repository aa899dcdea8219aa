"""A throwaway certificate authority for the TLS cases (SPEC.md 8.4, 11).

trustme makes the CA and its certificates in memory; it comes with
``rtt-core[testing]``. rtt itself never needs it: only the kit does.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

#: The names the kit's server certificates are valid for: the kit's clients use ``127.0.0.1``.
NAMES = ("127.0.0.1", "localhost")


def authority() -> trustme.CA:
    """A new CA, valid for one case."""
    try:
        import trustme
    except ImportError:
        raise AssertionError(
            "the TLS cases need trustme: pip install 'rtt-core[testing]' (or pip install trustme)"
        ) from None
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str, client_certificates: bool = False) -> ssl.SSLContext:
    """A server-side context with a certificate from ``ca`` for ``names`` (default :data:`NAMES`).

    With ``client_certificates``, it also requires each client to present a
    certificate from ``ca`` (mutual TLS).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or NAMES)).configure_cert(context)
    if client_certificates:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: trustme.CA, *, certificate: bool = False) -> ssl.SSLContext:
    """A client-side context that trusts ``ca`` (besides the system's CAs) and checks host names.

    With ``certificate``, it presents a client certificate from ``ca``.
    """
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if certificate:
        ca.issue_cert("rtt-kit-client@example.org").configure_cert(context)
    return context

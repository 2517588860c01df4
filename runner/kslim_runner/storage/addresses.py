"""Which hosts an http(s):// download may reach.

A URL in a spec is user input: without this check a job could make the runner fetch the cloud's
instance metadata (169.254.169.254, credentials included) or a cluster-internal service and publish
the answer as "weights". Link-local, loopback, private, shared (CGNAT, often pod and service CIDRs)
and reserved addresses are refused unless the operator allows them (KSLIM_ALLOW_PRIVATE_URLS=1, set
on runner pods by the operator's KSLIM_OPERATOR_ALLOW_PRIVATE_URLS). Every redirect hop is checked,
and the download connects to the address checked (not to the name, which a DNS-rebinding server
could answer differently the second time).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from kslim_api.contract import ALLOW_PRIVATE_URLS_ENV

from kslim_runner.errors import StorageUnavailable, UserError


def private_allowed() -> bool:
    return os.environ.get(ALLOW_PRIVATE_URLS_ENV, "").lower() in ("1", "true", "yes")


def is_internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    shared = isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10")
    return (
        ip.is_link_local
        or ip.is_loopback
        or ip.is_private
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or shared
    )


def check_host(host: str, port: int, url: str, what: str) -> str | None:
    """Refuse a host that resolves to any internal address (all of them are checked: a name with one
    public and one internal address could be steered to the internal one). Returns the address the
    download must connect to: the one checked, so that a name answering differently when the
    connection resolves it again (DNS rebinding) cannot steer it inside; None when internal
    addresses are allowed (connect by name)."""
    if private_allowed():
        return None
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise StorageUnavailable(
            f"{what}: cannot resolve host {host} of {url} ({e.strerror}): check the URL and the pod's DNS"
        ) from e
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if is_internal(ip):
            raise UserError(
                f"{what}: {url} resolves to {ip}, a link-local, loopback or cluster-internal address, "
                f"which downloads may not reach: use a public URL, or have the operator allow it "
                f"(KSLIM_OPERATOR_ALLOW_PRIVATE_URLS)",
                reason="AddressNotAllowed",
            )
    return str(infos[0][4][0])

"""Outbound URL policy: which addresses webhook and Slack requests may connect to."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.tracing import Trace
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata endpoints: refused whatever the configuration says.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
LINK_LOCAL_NETWORKS = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


class EgressRefused(Exception):
    """Raised when a request would connect to an address the egress policy refuses."""


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which destinations outbound requests may reach; link-local and metadata addresses never."""

    allow_private: bool = False
    allow_loopback: bool = False

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why connecting to this IP address is refused, or None when it is allowed."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip in METADATA_ADDRESSES:
            return f"address {ip} is a cloud metadata endpoint"
        if any(ip in net for net in LINK_LOCAL_NETWORKS) or ip.is_link_local:
            return f"address {ip} is link-local"
        if ip.is_loopback:
            return None if self.allow_loopback else f"address {ip} is loopback (allow_loopback is off)"
        if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
            return f"address {ip} is not routable"
        if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE):
            return None if self.allow_private else f"address {ip} is private (allow_private is off)"
        return None

    def host_refusal(self, host: str) -> str | None:
        """Why a host name is refused before any lookup (metadata names, refused IP literals)."""
        name = host.strip("[]").rstrip(".").lower()
        if name in METADATA_HOSTNAMES:
            return f"host {name} is a cloud metadata endpoint"
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return None
        return self.refusal(ip)

    def check_url(self, url: str) -> None:
        """Raise EgressRefused if the URL's host is refused by name or literal address."""
        host = URL(url).host
        if not host:
            raise EgressRefused("URL has no host")
        reason = self.host_refusal(host)
        if reason:
            raise EgressRefused(f"egress refused: {reason}")


_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


class GuardedConnector(aiohttp.TCPConnector):
    """TCP connector that checks every address it is about to connect to, after DNS, on every hop."""

    def __init__(self, policy: EgressPolicy, **kwargs: Any) -> None:
        # No DNS cache: each connection checks the addresses it actually uses.
        kwargs.setdefault("use_dns_cache", False)
        super().__init__(**kwargs)
        self.policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        reason = self.policy.host_refusal(host)
        if reason:
            raise EgressRefused(f"egress refused: {reason}")
        results = await super()._resolve_host(host, port, traces=traces)
        allowed = [r for r in results if self.policy.refusal(r["host"]) is None]
        if not allowed:
            reasons = sorted({self.policy.refusal(r["host"]) or "" for r in results})
            raise EgressRefused(f"egress refused: {host} resolves only to refused addresses ({reasons[0]})")
        return allowed


def create_session(
    policy: EgressPolicy,
    *,
    timeout: float | None = None,
    ssl_context: ssl.SSLContext | bool = True,
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """An aiohttp session whose every connection (redirects included) obeys the egress policy."""
    # No pool limit: max_in_flight bounds concurrency, and a hanging endpoint must not starve the others.
    connector = GuardedConnector(policy, ssl=ssl_context, limit=0)
    client_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else aiohttp.ClientTimeout()
    return aiohttp.ClientSession(connector=connector, timeout=client_timeout, trust_env=False, **kwargs)

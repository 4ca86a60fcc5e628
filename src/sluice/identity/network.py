"""Where a caller connects from, and the CIDR rules that admit or confine callers.

The client address is the TCP peer, unless the peer is a configured trusted proxy: then ``X-Forwarded-For`` is read
right to left and the first address that is not itself a trusted proxy is the client. A forged header from an
untrusted peer is therefore ignored, and a client cannot prepend its way past the proxies.

The gateway's own web UI calls the API over loopback for the browsers it serves. It works out each browser's address
by the same rule (from the page request) and vouches for it in :data:`BROWSER_HEADER`: the address with an HMAC
under a key derived from the JWT secret. That header is believed only from a loopback peer and only with a valid
MAC, so an outside caller (even one behind a reverse proxy on the same host) cannot forge it; the key is the same in
every worker and replica, so a UI request answered by another worker is still recognised.

Rules (compiled once per change into :class:`NetworkRules`, checked in memory on every request):
- ``global`` allow rules: when any exist, every caller must come from one of them;
- ``workspace`` rules: credentials of that workspace are accepted only from those networks;
- ``key`` rules: that key is accepted only from those networks;
- ``anonymous`` rules (any scope but key): callers without credentials from that network are admitted as a
  ``network`` principal with the rule's priority class, workspace and allowed models.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sluice.identity.principal import DEFAULT_PRIORITY, Principal
from sluice.store.models import DEFAULT_WORKSPACE_ID, IpRule

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

BROWSER_HEADER = b"x-sluice-browser"
MAX_PROXIES = 100


def parse_network(cidr: str) -> Network:
    """A CIDR (or a single address); raises ValueError with a readable message."""
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{cidr!r} is not a valid IP network (expected CIDR such as 10.0.0.0/8)") from None


def normalise_networks(cidrs: Iterable[str]) -> list[str]:
    """The CIDRs in canonical form, or ValueError naming the first bad entry (and its position)."""
    networks = []
    for index, cidr in enumerate(cidrs):
        try:
            networks.append(str(parse_network(cidr)))
        except ValueError as exc:
            raise ValueError(f"entry {index}: {exc}") from None
    if len(networks) > MAX_PROXIES:
        raise ValueError(f"at most {MAX_PROXIES} networks")
    return networks


def vouch_key(jwt_secret: str) -> bytes:
    """The key the UI signs browser addresses with: derived from the JWT secret, so every worker shares it."""
    return hmac.new(jwt_secret.encode(), b"sluice-ui-browser-address", hashlib.sha256).digest()


def parse_address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


class TrustedProxies:
    """The one rule for "which address is this caller at": every client-address decision goes through here."""

    def __init__(self, cidrs: Sequence[str], vouch_key: bytes | None = None) -> None:
        self.networks = [parse_network(c) for c in cidrs]
        self.cidrs = [str(n) for n in self.networks]
        self._vouch_key = vouch_key

    def with_cidrs(self, cidrs: Sequence[str]) -> TrustedProxies:
        """The same resolver with other proxies (a run-time change); the UI's vouching key stays."""
        return TrustedProxies(cidrs, self._vouch_key)

    def vouch(self, address: Address) -> str:
        """The :data:`BROWSER_HEADER` value by which this gateway's UI names the browser it acts for."""
        if self._vouch_key is None:
            raise RuntimeError("no vouching key: the resolver was built without one")
        text = str(address)
        return f"{text} {self._mac(text)}"

    def _mac(self, text: str) -> str:
        assert self._vouch_key is not None
        return hmac.new(self._vouch_key, text.encode(), hashlib.sha256).hexdigest()

    def _vouched(self, value: bytes) -> Address | None:
        if self._vouch_key is None:
            return None
        text, _, mac = value.decode("latin-1").partition(" ")
        if not hmac.compare_digest(mac.encode("latin-1"), self._mac(text).encode()):
            return None
        return parse_address(text)

    def client_address(
        self, peer: str | None, forwarded_for: bytes | None, browser: bytes | None = None
    ) -> Address | None:
        """The caller's address: the UI's vouched browser address, else the peer, else (from a trusted proxy) the
        right-most untrusted ``X-Forwarded-For`` hop."""
        address = parse_address(peer) if peer else None
        if browser is not None and address is not None and address.is_loopback:
            vouched = self._vouched(browser)
            if vouched is not None:
                return vouched
        if address is None or not self.networks or not _within(address, self.networks):
            return address
        if not forwarded_for:
            return address
        hops = [h for h in forwarded_for.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            hop_address = parse_address(hop)
            if hop_address is None:
                return address  # a garbled chain: trust only what we saw ourselves
            if not _within(hop_address, self.networks):
                return hop_address
            address = hop_address
        return address


@dataclass(frozen=True, slots=True)
class AnonymousRule:
    id: str
    network: Network
    workspace_id: str
    priority: str
    allowed_models: frozenset[str] | None


@dataclass(slots=True)
class NetworkRules:
    """The compiled rules; immutable once built (replaced as a whole when rules change)."""

    global_allow: list[Network] = field(default_factory=list)
    by_workspace: dict[str, list[Network]] = field(default_factory=dict)
    by_key: dict[str, list[Network]] = field(default_factory=dict)
    anonymous: list[AnonymousRule] = field(default_factory=list)

    @classmethod
    def compile(cls, rows: Iterable[IpRule]) -> NetworkRules:
        rules = cls()
        for row in rows:
            network = parse_network(row.cidr)
            if row.anonymous:
                rules.anonymous.append(
                    AnonymousRule(
                        id=row.id,
                        network=network,
                        workspace_id=row.workspace_id or DEFAULT_WORKSPACE_ID,
                        priority=row.priority or DEFAULT_PRIORITY,
                        allowed_models=frozenset(row.allowed_models) if row.allowed_models is not None else None,
                    )
                )
                continue
            if row.scope == "key" and row.key_id:
                rules.by_key.setdefault(row.key_id, []).append(network)
            elif row.scope == "workspace" and row.workspace_id:
                rules.by_workspace.setdefault(row.workspace_id, []).append(network)
            else:
                rules.global_allow.append(network)
        return rules

    @property
    def empty(self) -> bool:
        return not (self.global_allow or self.by_workspace or self.by_key or self.anonymous)

    def admits(self, principal: Principal, address: Address | None) -> bool:
        """Whether this authenticated principal may call from ``address``."""
        if principal.kind == "master":
            return True
        if self.global_allow and (address is None or not _within(address, self.global_allow)):
            return False
        workspace_rules = self.by_workspace.get(principal.workspace_id or "")
        if workspace_rules and (address is None or not _within(address, workspace_rules)):
            return False
        key_rules = self.by_key.get(principal.key_id or "")
        return not key_rules or (address is not None and _within(address, key_rules))

    def anonymous_principal(self, address: Address | None) -> Principal | None:
        if address is None:
            return None
        for rule in self.anonymous:
            if address.version == rule.network.version and address in rule.network:
                return Principal(
                    kind="network",
                    id=rule.id,
                    role="member",
                    workspace_id=rule.workspace_id,
                    priority=rule.priority,
                    allowed_models=rule.allowed_models,
                    label=f"network:{rule.network}",
                )
        return None

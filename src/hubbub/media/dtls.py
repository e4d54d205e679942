"""DTLS-SRTP in the server role through memory BIOs (RFC 5763, RFC 5764).

We answer `a=setup:passive`, so the peer sends the ClientHello. OpenSSL never touches a
socket: datagrams go in with `bio_write`, flights come out with `bio_read` and are split
into datagrams at record boundaries (a memory BIO has no datagram semantics).
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from hubbub.media import ice

# RFC 5764 §4.1.2 profile names as OpenSSL spells them -> (pylibsrtp profile, key len, salt len)
SRTP_PROFILES: dict[bytes, tuple[str, int, int]] = {
    b"SRTP_AEAD_AES_128_GCM": ("SRTP_PROFILE_AEAD_AES_128_GCM", 16, 12),
    b"SRTP_AES128_CM_SHA1_80": ("SRTP_PROFILE_AES128_CM_SHA1_80", 16, 14),
}

_RECORD_HEADER = struct.Struct("!BHH6sH")  # type, version, epoch, sequence, length (RFC 6347 §4.1)
_HANDSHAKE = 22  # record content type (RFC 5246 §6.2.1)


def fingerprint_of(der: bytes, algorithm: str = "sha-256") -> str:
    """The `a=fingerprint` value of a DER certificate (RFC 8122 §5): uppercase colon hex."""
    name = algorithm.lower().replace("-", "")
    digest = hashlib.new(name, der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class Certificate:
    """A self-signed ECDSA P-256 certificate shared by every transport of a node."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ice.random_credential(16))])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        self._key = key
        self._cert = cert
        self.fingerprint = fingerprint_of(cert.public_bytes(Encoding.DER))
        self._context: SSL.Context | None = None

    def context(self) -> SSL.Context:
        """The DTLS context of this certificate, made once: every connection shares it (a
        context loads the key and certificate, which a peer has no need to repeat)."""
        if self._context is None:
            self._context = self._new_context()
        return self._context

    def _new_context(self) -> SSL.Context:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        # The peer's certificate is self-signed: accept it during the handshake and check it
        # against the SDP fingerprint afterwards (RFC 5763 §5).
        ctx.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True
        )
        ctx.use_certificate(self._cert)
        ctx.use_privatekey(self._key)
        ctx.set_cipher_list(b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                            b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
        ctx.set_options(SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET)
        ctx.set_tlsext_use_srtp(b":".join(SRTP_PROFILES))
        return ctx


@dataclass(frozen=True)
class SrtpKeys:
    profile: str  # pylibsrtp Policy attribute name
    rx_key: bytes  # key + salt for packets from the peer (the DTLS client)
    tx_key: bytes  # key + salt for packets we send (the DTLS server)


class DtlsError(Exception):
    pass


class DtlsEndpoint:
    """One DTLS association over a memory BIO; `send` writes datagrams to the peer.

    The roles differ only in who speaks first and in which half of the exported keying material
    protects which direction; `DtlsServer` (hubbub, `a=setup:passive`) and `DtlsClient` (our RTP
    bots, `a=setup:active`) are the two.
    """

    is_client = False

    def __init__(
        self,
        context: SSL.Context,
        remote_fingerprints: list[tuple[str, str]],
        send: Callable[[bytes], None],
        mtu: int = 1200,
    ) -> None:
        self._conn = SSL.Connection(context)
        if self.is_client:
            self._conn.set_connect_state()
        else:
            self._conn.set_accept_state()
        self._conn.set_ciphertext_mtu(mtu)
        self._remote_fingerprints = [(a.lower(), v.upper()) for a, v in remote_fingerprints]
        self._send = send
        self._mtu = mtu
        self.done = False
        self.closed = False
        self.released = False
        self._final_flight: list[bytes] = []
        self._close_notify = b""

    def receive(self, data: bytes) -> SrtpKeys | None:
        """Feed one datagram. Returns the SRTP keys once the handshake has completed.

        Raises DtlsError when the handshake fails or the certificate does not match.
        """
        if self.closed:
            return None
        if self.released:
            # The peer retransmits its last flight: ours was lost (RFC 6347 §4.2.4).
            if data and data[0] == _HANDSHAKE:
                for datagram in self._final_flight:
                    self._send(datagram)
            return None
        self._conn.bio_write(data)
        if self.done:
            # Post-handshake traffic: a close_notify or a retransmitted Finished.
            try:
                self._conn.recv(1500)
            except SSL.ZeroReturnError:
                self.closed = True
            except SSL.Error:
                pass
            self._flush()
            return None
        return self._step()

    def timeout(self) -> float | None:
        """Seconds until the handshake retransmission timer fires (RFC 6347 §4.2.4), or None."""
        if self.done or self.closed:
            return None
        t = self._conn.DTLSv1_get_timeout()
        return float(t) if t is not None else None

    def handle_timeout(self) -> None:
        if not self.done and not self.closed:
            self._conn.DTLSv1_handle_timeout()
            self._flush()

    def release(self) -> None:
        """Free the OpenSSL connection (about 140 KB) once the peer has shown it holds the
        keys. What DTLS still owes the peer is kept as bytes: our final flight, resent if the
        peer retransmits its own, and a close_notify made now for `close` (nothing else is
        ever sent over this connection, so its record sequence number cannot change). A
        close_notify from the peer is no longer seen; ICE consent (RFC 7675) ends the
        transport instead."""
        if not self.done or self.closed or self.released:
            return
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        self._close_notify = self._read_pending()
        self.released = True
        self._conn = None  # type: ignore[assignment]

    def close(self) -> None:
        """Send close_notify (RFC 5246 §7.2.1) if the handshake had completed."""
        if self.closed:
            return
        self.closed = True
        if self.released:
            if self._close_notify:
                self._send(self._close_notify)
            return
        if self.done:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass
            self._flush()

    def _step(self) -> SrtpKeys | None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return None
        except SSL.Error as exc:
            self._flush()
            raise DtlsError(f"DTLS handshake failed: {exc}") from exc
        self._final_flight = self._flush()
        self.done = True
        self._check_fingerprint()
        return self._export_keys()

    def _read_pending(self) -> bytes:
        pending = b""
        while True:
            try:
                pending += self._conn.bio_read(16384)
            except SSL.WantReadError:
                return pending

    def _flush(self) -> list[bytes]:
        datagrams = split_records(self._read_pending(), self._mtu)
        for datagram in datagrams:
            self._send(datagram)
        return datagrams

    def _check_fingerprint(self) -> None:
        cert = self._conn.get_peer_certificate()
        if cert is None:
            raise DtlsError("DTLS peer sent no certificate")
        der = cert.to_cryptography().public_bytes(Encoding.DER)
        # RFC 8122 §5: the certificate must match the fingerprints. Offers often list several
        # hash functions (aiortc: sha-256/384/512); every one we can compute must match, so a
        # single forged line is enough to refuse.
        checked = 0
        for algorithm, value in self._remote_fingerprints:
            try:
                actual = fingerprint_of(der, algorithm)
            except ValueError:
                continue  # a hash function we do not know
            if actual != value:
                raise DtlsError("DTLS peer certificate does not match the SDP fingerprint")
            checked += 1
        if not checked:
            raise DtlsError("no SDP fingerprint with a supported hash function")

    def _export_keys(self) -> SrtpKeys:
        selected = self._conn.get_selected_srtp_profile()
        if selected not in SRTP_PROFILES:
            raise DtlsError(f"no common SRTP profile (peer chose {selected!r})")
        profile, key_len, salt_len = SRTP_PROFILES[selected]
        material = self._conn.export_keying_material(
            b"EXTRACTOR-dtls_srtp", 2 * (key_len + salt_len)
        )
        # RFC 5764 §4.2: client key, server key, client salt, server salt.
        client = material[:key_len] + material[2 * key_len : 2 * key_len + salt_len]
        server = material[key_len : 2 * key_len] + material[2 * key_len + salt_len :]
        if self.is_client:
            return SrtpKeys(profile, rx_key=server, tx_key=client)
        return SrtpKeys(profile, rx_key=client, tx_key=server)


class DtlsServer(DtlsEndpoint):
    """The server role: hubbub answers `a=setup:passive` and waits for the ClientHello."""


class DtlsClient(DtlsEndpoint):
    """The client role (RTP bots): call `start()` to send the ClientHello."""

    is_client = True

    def __init__(
        self,
        certificate: Certificate,
        remote_fingerprints: list[tuple[str, str]],
        send: Callable[[bytes], None],
        mtu: int = 1200,
    ) -> None:
        super().__init__(certificate.context(), remote_fingerprints, send, mtu)

    def start(self) -> None:
        self._step()


def split_records(data: bytes, mtu: int) -> list[bytes]:
    """Group DTLS records into datagrams of at most `mtu` bytes, never splitting a record."""
    datagrams: list[bytes] = []
    current = b""
    pos = 0
    while pos + _RECORD_HEADER.size <= len(data):
        length = _RECORD_HEADER.unpack_from(data, pos)[4]
        end = pos + _RECORD_HEADER.size + length
        record = data[pos:end]
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
        pos = end
    if current:
        datagrams.append(current)
    return datagrams

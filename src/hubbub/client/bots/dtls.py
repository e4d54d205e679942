"""DTLS-SRTP in the client role through a memory BIO (RFC 5763 §5, RFC 5764 §4.2).

The server answers `a=setup:passive`, so a bot offers `a=setup:active` and sends the
ClientHello. Same mechanics as `hubbub.media.dtls.DtlsServer` (memory BIO, flights split at
record boundaries, retransmission timer), with the roles of the exported keys swapped.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from hubbub.media.dtls import (
    SRTP_PROFILES,
    Certificate,
    DtlsError,
    SrtpKeys,
    fingerprint_of,
    split_records,
)

__all__ = ["DtlsClient", "DtlsError"]


class DtlsClient:
    """One DTLS association as the client. Call `start()`, then feed datagrams to `receive`."""

    def __init__(
        self,
        certificate: Certificate,
        remote_fingerprints: list[tuple[str, str]],
        send: Callable[[bytes], None],
        mtu: int = 1200,
    ) -> None:
        self._conn = SSL.Connection(certificate.context())
        self._conn.set_connect_state()
        self._conn.set_ciphertext_mtu(mtu)
        self._remote_fingerprints = [(a.lower(), v.upper()) for a, v in remote_fingerprints]
        self._send = send
        self._mtu = mtu
        self.done = False
        self.closed = False

    def start(self) -> None:
        """Send the ClientHello."""
        self._step()

    def receive(self, data: bytes) -> SrtpKeys | None:
        """Feed one datagram; returns the SRTP keys (rx = server's, tx = ours) once done.

        Raises DtlsError when the handshake fails or the server's certificate does not match
        its SDP fingerprint.
        """
        if self.closed:
            return None
        self._conn.bio_write(data)
        if self.done:
            try:  # post-handshake records: close_notify, retransmitted Finished
                self._conn.recv(1500)
            except SSL.ZeroReturnError:
                self.closed = True
            except SSL.Error:
                pass
            self._flush()
            return None
        return self._step()

    def timeout(self) -> float | None:
        """Seconds until the retransmission timer fires (RFC 6347 §4.2.4), or None."""
        if self.done or self.closed:
            return None
        t = self._conn.DTLSv1_get_timeout()
        return float(t) if t is not None else None

    def handle_timeout(self) -> None:
        if not self.done and not self.closed:
            self._conn.DTLSv1_handle_timeout()
            self._flush()

    def close(self) -> None:
        """Send close_notify (RFC 5246 §7.2.1) if the handshake had completed."""
        if self.closed:
            return
        self.closed = True
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
        self._flush()
        self.done = True
        self._check_fingerprint()
        return self._export_keys()

    def _flush(self) -> None:
        pending = b""
        while True:
            try:
                pending += self._conn.bio_read(16384)
            except SSL.WantReadError:
                break
        for datagram in split_records(pending, self._mtu):
            self._send(datagram)

    def _check_fingerprint(self) -> None:
        cert = self._conn.get_peer_certificate()
        if cert is None:
            raise DtlsError("DTLS server sent no certificate")
        der = cert.to_cryptography().public_bytes(Encoding.DER)
        # RFC 8122 §5: every fingerprint we can compute must match.
        checked = 0
        for algorithm, value in self._remote_fingerprints:
            try:
                actual = fingerprint_of(der, algorithm)
            except ValueError:
                continue
            if actual != value:
                raise DtlsError("DTLS server certificate does not match the SDP fingerprint")
            checked += 1
        if not checked:
            raise DtlsError("no SDP fingerprint with a supported hash function")

    def _export_keys(self) -> SrtpKeys:
        selected = self._conn.get_selected_srtp_profile()
        if selected not in SRTP_PROFILES:
            raise DtlsError(f"no common SRTP profile (server chose {selected!r})")
        profile, key_len, salt_len = SRTP_PROFILES[selected]
        material = self._conn.export_keying_material(
            b"EXTRACTOR-dtls_srtp", 2 * (key_len + salt_len)
        )
        # RFC 5764 §4.2: client key, server key, client salt, server salt. We are the client.
        client_key = material[:key_len]
        server_key = material[key_len : 2 * key_len]
        client_salt = material[2 * key_len : 2 * key_len + salt_len]
        server_salt = material[2 * key_len + salt_len :]
        return SrtpKeys(profile, rx_key=server_key + server_salt, tx_key=client_key + client_salt)

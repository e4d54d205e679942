"""After the handshake the server frees its OpenSSL connection (about 140 KB per peer) and
keeps what DTLS still owes the peer as bytes: its final flight and a close_notify."""

from __future__ import annotations

from hubbub.media.dtls import Certificate, DtlsClient, DtlsServer, SrtpKeys


def pair() -> tuple[DtlsServer, DtlsClient, list[bytes], list[bytes]]:
    """A server and a client whose datagrams queue up in (to_server, to_client); started."""
    server_cert, client_cert = Certificate(), Certificate()
    to_server: list[bytes] = []
    to_client: list[bytes] = []
    server = DtlsServer(server_cert.context(), [("sha-256", client_cert.fingerprint)],
                        to_client.append)
    client = DtlsClient(client_cert, [("sha-256", server_cert.fingerprint)], to_server.append)
    client.start()
    return server, client, to_server, to_client


def handshake() -> tuple[DtlsServer, DtlsClient, list[bytes], list[bytes], SrtpKeys]:
    server, client, to_server, to_client = pair()
    keys = None
    for _ in range(10):
        while to_server:
            keys = server.receive(to_server.pop(0)) or keys
        if not to_client:
            break
        final = list(to_client)
        while to_client:
            client.receive(to_client.pop(0))
    assert server.done and client.done and keys is not None
    return server, client, to_server, final, keys


def test_a_released_server_resends_its_final_flight_when_the_peer_retransmits() -> None:
    server, client, to_server, final, _ = handshake()
    server.release()
    assert server.released
    sent: list[bytes] = []
    server._send = sent.append  # type: ignore[method-assign]
    server.receive(bytes([22]) + bytes(30))  # a handshake record: the peer lost our flight
    assert sent == final
    sent.clear()
    server.receive(bytes([23]) + bytes(30))  # application data: ignored
    assert sent == []


def test_a_peer_that_lost_our_final_flight_completes_from_the_kept_bytes() -> None:
    """hubbub releases at the end of its handshake: the peer may not have our last flight
    yet. When it is lost, the peer's retransmission (RFC 6347 §4.2.4) gets it again."""
    import time

    server, client, to_server, to_client = pair()
    keys = None
    while keys is None:  # ClientHello, (cookie exchange,) ServerHello..., client's last flight
        while to_server:
            keys = server.receive(to_server.pop(0)) or keys
        if keys is None:
            while to_client:
                client.receive(to_client.pop(0))
    server.release()
    assert to_client, "the server's final flight"
    to_client.clear()  # lost on the way
    assert not client.done
    timeout = client.timeout()
    assert timeout is not None
    time.sleep(timeout + 0.05)
    client.handle_timeout()  # the client resends its last flight
    assert to_server
    while to_server:
        server.receive(to_server.pop(0))
    assert to_client, "a released server answers from the bytes it kept"
    client_keys = None
    while to_client:
        client_keys = client.receive(to_client.pop(0)) or client_keys
    assert client.done and client_keys is not None
    assert (client_keys.tx_key, client_keys.rx_key) == (keys.rx_key, keys.tx_key)


def test_the_close_notify_made_at_release_closes_the_peer() -> None:
    server, client, _, _, _ = handshake()
    server.release()
    sent: list[bytes] = []
    server._send = sent.append  # type: ignore[method-assign]
    server.close()
    [alert] = sent
    assert alert[0] == 21  # an alert record, encrypted under the handshake's keys
    client.receive(alert)
    assert client.closed, "the peer decrypts and accepts our close_notify"


def test_release_before_the_handshake_is_a_no_op() -> None:
    cert = Certificate()
    server = DtlsServer(cert.context(), [("sha-256", cert.fingerprint)], lambda d: None)
    server.release()
    assert not server.released

"""A partner access point built on the independent Python AS4 library (PyPI as4==0.2.0), for
as4gw's over-HTTP interop tests (tests/it/interop_as4py_http.rs).

The library has no transport of its own (it turns bytes + headers into an exchange and back), so
this script adds the HTTP(S) layer with the standard library (`http.server`, `ssl`) and urllib3
(a pinned dependency of the library). Everything AS4 — building, signing, encrypting,
decrypting, verifying, receipts — is the library's public API (`as4`, `as4.peppol`), through
the helpers of driver.py.

Modes:

  serve  an HTTPS server (mutual TLS: the client must present a certificate chaining to --ca).
         Each POST to /as4 is given to `parse_peppol_message`; the answer is the library's
         signal (its signed receipt, or its error signal) with HTTP 200. Every exchange is
         recorded in --out as received-<n>.json (the verdict) and received-<n>.sbd.xml (the
         decrypted payload). Prints {"listening": <port>} on stdout when ready.
  send   builds a message with the library (`PeppolSendingExchange.build`), POSTs it over
         HTTPS (server certificate checked against --ca, our TLS certificate as client
         certificate) and verifies the answer with `receive_signal`. Prints one JSON verdict;
         the SBD the library compressed is written to --out/sent.sbd.xml.

Exit status 0 means the step ran to a verdict (read "ok"); anything else is a harness failure.
"""

import argparse
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import urllib3
from as4 import ReceiptVerificationError, SecurityPolicy, certificate_chain
from as4.peppol import (
    BusdoxDocidQnsDocumentIdentifier,
    PeppolAS4MessageBuilderArgs,
    PeppolAS4Profile,
    PeppolSendingExchange,
    create_peppol_external_party,
    parse_peppol_message,
)

from driver import DOCUMENT_TYPE, PROCESS, certificate, local_party


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, with Content-Length or chunked transfer coding."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()  # CRLF after the chunk
    return handler.rfile.read(int(handler.headers.get("Content-Length", "0")))


def serve(args) -> int:
    party = local_party(args.party_id, args.cert, args.key)
    policy = SecurityPolicy(signer_resolver=certificate_chain(certificate(args.ca)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # to stderr, one line per request
            sys.stderr.write("partner: " + (fmt % a) + "\n")

        def answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = read_body(self)
            if self.path != "/as4":
                self.answer(404, "text/plain", b"not found")
                return
            with lock:
                counter["n"] += 1
                n = counter["n"]
            peer = self.connection.getpeercert() or {}
            record = {
                "n": n,
                "content_type": self.headers.get("Content-Type"),
                "tls_client_subject": [list(rdn[0]) for rdn in peer.get("subject", ())],
                "tls_version": self.connection.version(),
            }
            try:
                exchange = parse_peppol_message(
                    request_headers={"Content-Type": self.headers.get("Content-Type", "")},
                    request_body=body,
                    local_party=party,
                    security_policy=policy,
                )
                headers, signal = exchange.build_signal()
            except Exception as error:  # a harness failure: recorded, answered with 500
                record.update(ok=False, exception=repr(error))
                (out / f"received-{n}.json").write_text(json.dumps(record))
                self.answer(500, "text/plain", repr(error).encode())
                return
            message = exchange.message
            record.update(
                ok=exchange.successful,
                state=exchange.state,
                message_id=exchange.message_id,
                signed_references=[r.uri for r in exchange.signed_references],
            )
            if message is not None and message.parse_error is not None:
                e = message.parse_error
                record["error"] = {"code": e.error_code, "short": e.short_description, "detail": e.detail}
            if exchange.successful and message is not None:
                (out / f"received-{n}.sbd.xml").write_bytes(next(iter(message.decrypted_data.values())))
                record.update(
                    sender=message.sender,
                    recipient=message.recipient,
                    from_party=message.get_remote_party().identity.party_id,
                )
            (out / f"received-{n}.signal.xml").write_bytes(signal)
            # Written last and renamed: the test reads complete records only.
            tmp = out / f".received-{n}.json"
            tmp.write_text(json.dumps(record))
            tmp.rename(out / f"received-{n}.json")
            content_type = headers.get("Content-Type", "application/soap+xml; charset=utf-8")
            self.answer(200, content_type, signal)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=args.ca)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: as4gw presents its [as4.tls] pair
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    server.serve_forever()
    return 0


def send(args) -> int:
    exchange = PeppolSendingExchange(
        profile=PeppolAS4Profile,
        local_party=local_party(args.party_id, args.cert, args.key),
        remote_party=create_peppol_external_party(args.to_party_id, certificate(args.to_cert)),
    )
    builder_args = PeppolAS4MessageBuilderArgs(
        sender=args.sender,
        recipient=args.recipient,
        document_type_identifier=BusdoxDocidQnsDocumentIdentifier.from_identifier_value(DOCUMENT_TYPE),
        document_identification_instance_identifier=args.instance_id,
        process_identifier=PROCESS,
        c1_country_id="BE",
    )
    headers, body = exchange.build(Path(args.payload).read_bytes(), builder_args)
    out = Path(args.out)
    (out / "sent.sbd.xml").write_bytes(next(iter(exchange.message.decrypted_data.values())))

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    http = urllib3.PoolManager(ssl_context=context, retries=False, timeout=urllib3.Timeout(total=120))
    response = http.request("POST", args.url, body=body, headers=headers)
    (out / "response.body").write_bytes(response.data)
    result = {
        "message_id": exchange.message_id,
        "http_status": response.status,
        "response_content_type": response.headers.get("Content-Type"),
    }
    try:
        exchange.receive_signal(response.data)
    except ReceiptVerificationError as error:
        result.update(ok=False, state=exchange.state, reason=str(error))
    except Exception as error:  # not a signal the library can read (e.g. an unsigned error)
        result.update(ok=False, state=exchange.state, reason=repr(error))
    else:
        receipt = exchange.receipt
        result.update(
            ok=exchange.successful,
            state=exchange.state,
            ref_to_message_id=receipt.original_message_id if receipt else None,
            acknowledged=[r.uri for r in receipt.non_repudiated_references] if receipt else [],
            error=receipt.error.error_code if receipt and receipt.error else None,
        )
    print(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "send"):
        c = commands.add_parser(name)
        c.add_argument("--party-id", required=True, help="our PartyId")
        c.add_argument("--cert", required=True, help="our message certificate (PEM)")
        c.add_argument("--key", required=True, help="our message private key (PEM, unencrypted)")
        c.add_argument("--tls-cert", required=True, help="our TLS certificate (server and client)")
        c.add_argument("--tls-key", required=True, help="our TLS private key")
        c.add_argument("--ca", required=True, help="CA for TLS peers and message signers")
        c.add_argument("--out", required=True, help="directory for the outputs")
    s = commands.choices["serve"]
    s.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    c = commands.choices["send"]
    c.add_argument("--url", required=True, help="the receiver's AS4 endpoint (https)")
    c.add_argument("--to-party-id", required=True)
    c.add_argument("--to-cert", required=True, help="the receiver's message certificate")
    c.add_argument("--sender", required=True, help="originalSender participant")
    c.add_argument("--recipient", required=True, help="finalRecipient participant")
    c.add_argument("--instance-id", required=True, help="SBDH InstanceIdentifier")
    c.add_argument("--payload", required=True, help="business document (XML)")
    args = parser.parse_args()
    return {"serve": serve, "send": send}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

"""Drives the independent Python AS4 library (PyPI as4==0.2.0) for as4gw's interop tests.

Subcommands (one step of an exchange each; files in, files out):

  send           build a signed, gzip-compressed, encrypted Peppol user message (we are C2)
  check-receipt  verify the receipt for a message built by `send` (signature, NRR digests)
  receive        parse a message (we are C3), decrypt, verify, answer with the library's signal

Each prints one JSON object on stdout. Exit status 0 means the step ran to a verdict (read "ok"
for it); anything else is a harness failure (traceback on stderr).

Only the library's public API is used (`as4`, `as4.peppol`). Trust: the signer must chain to the
given CA (`as4.certificate_chain`), not the Peppol PKI.
"""

import argparse
import json
import sys
from pathlib import Path

from as4 import AS4LocalPrivateKey, ReceiptVerificationError, SecurityPolicy, certificate_chain
from as4.peppol import (
    BusdoxDocidQnsDocumentIdentifier,
    PeppolAS4MessageBuilderArgs,
    PeppolAS4Profile,
    PeppolSendingExchange,
    create_peppol_external_party,
    create_peppol_internal_party,
    parse_peppol_message,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

# What every test exchange is about (a Peppol BIS Billing 3.0 invoice).
DOCUMENT_TYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice"
    "##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


def certificate(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def local_party(party_id: str, cert: str, key: str):
    private_key = load_pem_private_key(Path(key).read_bytes(), password=None)
    return create_peppol_internal_party(party_id, certificate(cert), AS4LocalPrivateKey(private_key))


def send(args) -> dict:
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
    (out / "request.body").write_bytes(body)
    (out / "exchange.json").write_text(exchange.model_dump_json())
    # The bytes the library gzipped: the SBD it wrapped around our payload.
    (out / "sent.sbd.xml").write_bytes(next(iter(exchange.message.decrypted_data.values())))
    return {"ok": True, "message_id": exchange.message_id, "content_type": headers["Content-Type"]}


def check_receipt(args) -> dict:
    exchange = PeppolSendingExchange.restore(
        Path(args.exchange).read_text(), local_party(args.party_id, args.cert, args.key)
    )
    try:
        exchange.receive_signal(Path(args.receipt).read_bytes())
    except ReceiptVerificationError as error:
        return {"ok": False, "state": exchange.state, "reason": str(error)}
    receipt = exchange.receipt
    return {
        "ok": exchange.successful,
        "state": exchange.state,
        "ref_to_message_id": receipt.original_message_id if receipt else None,
        "acknowledged": [r.uri for r in receipt.non_repudiated_references] if receipt else [],
        "error": receipt.error.error_code if receipt and receipt.error else None,
    }


def receive(args) -> dict:
    policy = SecurityPolicy(signer_resolver=certificate_chain(certificate(args.ca)))
    exchange = parse_peppol_message(
        request_headers={"Content-Type": args.content_type},
        request_body=Path(args.body).read_bytes(),
        local_party=local_party(args.party_id, args.cert, args.key),
        security_policy=policy,
    )
    _headers, signal = exchange.build_signal()
    out = Path(args.out)
    (out / "signal.xml").write_bytes(signal)
    message = exchange.message
    result = {
        "ok": exchange.successful,
        "state": exchange.state,
        "message_id": exchange.message_id,
        "signed_references": [r.uri for r in exchange.signed_references],
    }
    if message is not None and message.parse_error is not None:
        error = message.parse_error
        result["error"] = {"code": error.error_code, "short": error.short_description, "detail": error.detail}
    if exchange.successful and message is not None:
        payload = next(iter(message.decrypted_data.values()))
        (out / "received.sbd.xml").write_bytes(payload)
        result.update(sender=message.sender, recipient=message.recipient, from_party=message.get_remote_party().identity.party_id)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("send", "check-receipt", "receive"):
        command = commands.add_parser(name)
        command.add_argument("--party-id", required=True, help="our PartyId")
        command.add_argument("--cert", required=True, help="our certificate (PEM)")
        command.add_argument("--key", required=True, help="our private key (PEM, unencrypted)")
    commands.choices["send"].add_argument("--to-party-id", required=True)
    commands.choices["send"].add_argument("--to-cert", required=True, help="the receiver's certificate")
    commands.choices["send"].add_argument("--sender", required=True, help="originalSender participant")
    commands.choices["send"].add_argument("--recipient", required=True, help="finalRecipient participant")
    commands.choices["send"].add_argument("--instance-id", required=True, help="SBDH InstanceIdentifier")
    commands.choices["send"].add_argument("--payload", required=True, help="business document (XML)")
    commands.choices["send"].add_argument("--out", required=True, help="directory for the outputs")
    commands.choices["check-receipt"].add_argument("--exchange", required=True, help="exchange.json from send")
    commands.choices["check-receipt"].add_argument("--receipt", required=True, help="the receipt (SOAP)")
    commands.choices["receive"].add_argument("--ca", required=True, help="CA the signer must chain to")
    commands.choices["receive"].add_argument("--content-type", required=True, help="HTTP Content-Type")
    commands.choices["receive"].add_argument("--body", required=True, help="HTTP body")
    commands.choices["receive"].add_argument("--out", required=True, help="directory for the outputs")
    args = parser.parse_args()
    run = {"send": send, "check-receipt": check_receipt, "receive": receive}[args.command]
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Rebuilds the committed seed corpora fuzz/corpus/<target>/seed-* from the repository's own test
# files (tests/fixtures, pmodes, tests/pmodes-broken). Inputs libFuzzer finds later are written
# next to them and git-ignored (see fuzz/.gitignore). Run from anywhere; needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import glob, hashlib, json, os, shutil

FX = "tests/fixtures/"
OUT = "fuzz/corpus/"

def reset(target):
    d = OUT + target
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(d + "/seed-*"):
        os.remove(f)
    return d

def put(target, name, data, limit=32 * 1024):
    if len(data) > limit:
        return
    safe = name.replace("/", "_")
    with open(f"{OUT}{target}/seed-{safe}", "wb") as f:
        f.write(data)

def read(p):
    with open(p, "rb") as f:
        return f.read()

# (1) mime_reader: selector byte, then a capture with headers (even selector) or
#     "<content-type>\n<body>" (odd selector); bit 7 selects small limits.
reset("mime_reader")
captures = [
    "interop/phase4/testfiles/WrongCompression.mime",
    "interop/phase4/peppol-outbound/dump-raw.as4out",
    "interop/phase4/peppol-receipts/helger.as4in",
    "interop/phase4/peppol-receipts/governikus.as4in",
]
for i, p in enumerate(captures):
    data = read(FX + p)
    put("mime_reader", os.path.basename(p), bytes([2 * i]) + data)
    put("mime_reader", "small-" + os.path.basename(p), bytes([0x80 | (2 * i)]) + data)
soap = read(FX + "interop/phase4/soap12test/UserMessage12.xml")
put("mime_reader", "soap-only", b"\x01application/soap+xml; charset=utf-8\n" + soap)
mp = (b'\x07multipart/related; boundary="b1"; type="application/soap+xml"; start="<root@x>"\n'
      b"--b1\r\nContent-Type: application/soap+xml\r\nContent-ID: <root@x>\r\n\r\n" + soap +
      b"\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-ID: <p1@x>\r\n"
      b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--b1--\r\n")
put("mime_reader", "multipart-base64", mp)
put("mime_reader", "multipart-lf", mp.replace(b"\r\n", b"\n").replace(b"\x07", b"\x0b", 1))

# (2) xml_c14n: "<PrefixList>\n<document>".
reset("xml_c14n")
cases = json.load(open(FX + "c14n/generated/cases.json"))["cases"]
for c in cases:
    doc = read(f"{FX}c14n/generated/{c['id']}/input.xml")
    pl = " ".join(c.get("inclusive_namespaces_prefix_list") or [])
    put("xml_c14n", c["id"], pl.encode() + b"\n" + doc)
for p in sorted(glob.glob(FX + "c14n/santuario-exc-c14n-examples/example*.xml")
                + glob.glob(FX + "c14n/w3c-interop/*/*.xml")):
    put("xml_c14n", p[len(FX):], b"#default ds soap\n" + read(p))

# (3) ebms_envelope: SOAP envelopes and bare eb:Messaging headers.
reset("ebms_envelope")
for p in sorted(glob.glob(FX + "interop/phase4/soap1[12]test/*.xml")
                + glob.glob(FX + "interop/phase4/testfiles/*.xml")
                + glob.glob(FX + "interop/domibus/messages/*.xml")
                + glob.glob(FX + "oots/oots-france/fixtures/reference/messages/*.entete.xml")
                + glob.glob(FX + "oots/oots-france/fixtures/reference/soap/*.xml")):
    put("ebms_envelope", p[len(FX):], read(p))

# (4) security_inbound: signed and/or encrypted messages and captures.
reset("security_inbound")
for p in sorted(glob.glob(FX + "interop/domibus/messages/*.xml")
                + glob.glob(FX + "interop/domibus/messages/sampleSOAPHeaders/*.xml")
                + glob.glob(FX + "interop/phase4/peppol-receipts/*.as4in")
                + [FX + "interop/phase4/peppol-outbound/dump-raw.as4out",
                   FX + "interop/phase4/testfiles/TestReceipt11.xml",
                   FX + "interop/phase4/testfiles/TestReceipt12.xml",
                   FX + "interop/phase4/testfiles/WrongSigningAlgorithm.xml"]):
    put("security_inbound", p[len(FX):], read(p), limit=40 * 1024)

# (5) pmode_toml: the shipped presets, the broken examples and the reference file.
reset("pmode_toml")
for p in sorted(glob.glob("pmodes/*.toml") + glob.glob("tests/pmodes-broken/*.toml")
                + ["docs/pmode-reference.toml"]):
    put("pmode_toml", p, read(p))
PY
du -sh fuzz/corpus
for d in fuzz/corpus/*/; do echo "$(ls "$d" | wc -l) $d"; done

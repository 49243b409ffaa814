//! WS-Security for eDelivery AS4 1.15 (RSA) and 2.0 (Ed25519/X25519): sign, verify, encrypt, decrypt, NRR receipts.

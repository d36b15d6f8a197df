#!/usr/bin/env python3
"""Fixed AES-256-GCM vectors for shared/tests/wechatpay_v3.rs, made with an
implementation independent of the Rust one (pyca/cryptography's AESGCM).

Run from this directory:  python3 make_vectors.py > aes_gcm.json
Made with cryptography 48.0.0. The inputs are fixed, so the output is too
(GCM is deterministic for a given key, nonce and associated data).
"""
import base64
import json

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CASES = [
    # A v3 payment notification's resource, as WeChat documents its shape.
    {
        "name": "transaction",
        "key": "5a1dbox0v3key0for0tests000000032",
        "nonce": "fdasflkja484",
        "associated_data": "transaction",
        "plaintext": json.dumps(
            {
                "mchid": "1900000109",
                "appid": "wx5a1d0b0c0a000001",
                "out_trade_no": "20240301abc",
                "transaction_id": "4200000001202403011234567890",
                "trade_state": "SUCCESS",
                "amount": {"total": 100, "payer_total": 100, "currency": "CNY", "payer_currency": "CNY"},
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ),
    },
    # A downloaded certificate: WeChat uses "certificate" as associated data.
    {
        "name": "certificate",
        "key": "0123456789abcdef0123456789ABCDEF",
        "nonce": "4de73afd28b6",
        "associated_data": "certificate",
        "plaintext": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    },
    # No associated data at all.
    {
        "name": "empty_aad",
        "key": "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
        "nonce": "000000000000",
        "associated_data": "",
        "plaintext": "退款成功",
    },
]


def main():
    out = []
    for case in CASES:
        key = case["key"].encode()
        assert len(key) == 32, case["name"]
        aad = case["associated_data"].encode() or None
        ct = AESGCM(key).encrypt(case["nonce"].encode(), case["plaintext"].encode(), aad)
        out.append({**case, "ciphertext": base64.b64encode(ct).decode()})
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()

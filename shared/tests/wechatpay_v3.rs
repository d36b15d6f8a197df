//! shared::wechatpay_v3 against independent implementations: the `openssl`
//! command line on keys and certificates it makes in a temp dir, and fixed
//! AES-256-GCM vectors made with Python's `cryptography`
//! (data/wechatpay_v3/make_vectors.py).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{NaiveDateTime, TimeZone, Utc};
use shared::wechatpay_v3::{
    ApiV3Key, Authorization, EncryptedResource, MerchantSigner, Notification, PlatformCertificate,
    PrivateKey, PublicKey, SignedMessage, V3Error, Verifier, jsapi_pay_message, request_message,
};

/// A temp dir of openssl-made material, removed on drop.
struct Ossl {
    dir: PathBuf,
}

impl Drop for Ossl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Ossl {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("wechatpay-v3-{}", shared::random::alphanumeric(12)));
        std::fs::create_dir_all(&dir).unwrap();
        Ossl { dir }
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        openssl(args, &self.dir)
    }

    fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.dir.join(name), data).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    fn text(&self, name: &str) -> String {
        String::from_utf8(self.read(name)).unwrap()
    }

    /// `NAME.key` (PKCS#8) and `NAME.pub` (SPKI).
    fn rsa_key(&self, name: &str) {
        let key = format!("{name}.key");
        self.run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &key,
        ]);
        self.run(&[
            "pkey",
            "-in",
            &key,
            "-pubout",
            "-out",
            &format!("{name}.pub"),
        ]);
    }

    /// `NAME.crt`, self-signed with `NAME.key`, with the given serial.
    fn certificate(&self, name: &str, serial: &str) {
        self.run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            "/CN=Tenpay.com Root CA test/O=wechatpay-v3 test",
            "-days",
            "30",
            "-set_serial",
            serial,
            "-out",
            &format!("{name}.crt"),
        ]);
    }

    /// openssl's SHA256withRSA signature of `message`, base64.
    fn sign(&self, key: &str, message: &[u8]) -> String {
        self.write("msg", message);
        self.run(&[
            "dgst",
            "-sha256",
            "-sign",
            &format!("{key}.key"),
            "-out",
            "sig",
            "msg",
        ]);
        STANDARD.encode(self.read("sig"))
    }

    /// Whether openssl verifies the base64 signature of `message`.
    fn verifies(&self, key: &str, message: &[u8], signature_b64: &str) -> bool {
        self.write("msg", message);
        self.write("sig", &STANDARD.decode(signature_b64).unwrap());
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify", &format!("{key}.pub")])
            .args(["-signature", "sig", "msg"])
            .current_dir(&self.dir)
            .output()
            .unwrap()
            .status
            .success()
    }
}

fn merchant(o: &Ossl) -> MerchantSigner {
    MerchantSigner::from_pem("1900000109", "MCHSERIAL", &o.text("mch.key")).unwrap()
}

#[test]
fn request_signatures_verify_with_openssl() {
    let o = Ossl::new();
    o.rsa_key("mch");
    let signer = merchant(&o);
    let body = r#"{"mchid":"1900000109","description":"测试"}"#;
    let header = signer.authorization_at(
        "POST",
        "/v3/pay/transactions/jsapi",
        1554208460,
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        body,
    );
    let auth = Authorization::parse(&header).unwrap();
    assert_eq!(auth.mchid, "1900000109");
    assert_eq!(auth.serial_no, "MCHSERIAL");
    assert_eq!(auth.timestamp, "1554208460");
    assert_eq!(auth.nonce_str, "593BEC0C930BF1AFEB40B4A08C8FB242");
    // The message as WeChat documents it, written out independently.
    let expected = format!(
        "POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{body}\n"
    );
    assert!(o.verifies("mch", expected.as_bytes(), &auth.signature));
    assert!(!o.verifies("mch", format!("{expected} ").as_bytes(), &auth.signature));
    // PKCS#1 v1.5 is deterministic: openssl's own signature is the same.
    assert_eq!(o.sign("mch", expected.as_bytes()), auth.signature);

    let fresh = Authorization::parse(&signer.authorization("GET", "/v3/certificates", "")).unwrap();
    let message = request_message(
        "GET",
        "/v3/certificates",
        fresh.timestamp.parse().unwrap(),
        &fresh.nonce_str,
        "",
    );
    assert!(o.verifies("mch", message.as_bytes(), &fresh.signature));
    assert!((Utc::now().timestamp() - fresh.timestamp.parse::<i64>().unwrap()).abs() < 60);
}

#[test]
fn jsapi_pay_sign_verifies_with_openssl() {
    let o = Ossl::new();
    o.rsa_key("mch");
    let sign = merchant(&o).jsapi_pay_sign(
        "wx8888888888888888",
        "1414561699",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "prepay_id=wx201410272009395522657a690389285100",
    );
    let expected = "wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n\
                    prepay_id=wx201410272009395522657a690389285100\n";
    assert_eq!(
        jsapi_pay_message(
            "wx8888888888888888",
            "1414561699",
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
            "prepay_id=wx201410272009395522657a690389285100"
        ),
        expected
    );
    assert!(o.verifies("mch", expected.as_bytes(), &sign));
}

#[test]
fn keys_load_from_openssl_pem_and_refuse_garbage() {
    let o = Ossl::new();
    o.rsa_key("k");
    let private = PrivateKey::from_pem(&o.text("k.key")).unwrap();
    let public = PublicKey::from_pem(&o.text("k.pub")).unwrap();
    assert_eq!(private.public_key(), public);
    // PKCS#1 ("RSA PRIVATE KEY") is accepted too.
    o.run(&["rsa", "-in", "k.key", "-traditional", "-out", "k1.key"]);
    assert!(o.text("k1.key").contains("BEGIN RSA PRIVATE KEY"));
    assert_eq!(
        PrivateKey::from_pem(&o.text("k1.key"))
            .unwrap()
            .public_key(),
        public
    );
    assert!(matches!(
        PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(V3Error::PrivateKey(_))
    ));
    assert!(matches!(
        PublicKey::from_pem(&o.text("k.key")),
        Err(V3Error::PublicKey(_))
    ));
    // Our PEM output reads back in openssl.
    o.write("ours.pub", public.to_pem().as_bytes());
    let modulus_ours = o.run(&["rsa", "-pubin", "-in", "ours.pub", "-noout", "-modulus"]);
    let modulus_theirs = o.run(&["rsa", "-pubin", "-in", "k.pub", "-noout", "-modulus"]);
    assert_eq!(modulus_ours, modulus_theirs);
}

/// WeChat's answers are verified with the key `Wechatpay-Serial` names.
#[test]
fn verifier_picks_the_public_key_or_the_certificate_by_serial() {
    let o = Ossl::new();
    o.rsa_key("pubkey");
    o.rsa_key("platform");
    o.certificate("platform", "0x5A1DB0C5A1DB0C5A1DB0C5A1DB0C5A1DB0C5A1DB");
    let cert = PlatformCertificate::from_pem(&o.text("platform.crt")).unwrap();
    let key_id = "PUB_KEY_ID_0114232134912410000000000000";
    let verifier = Verifier::new()
        .with_public_key(key_id, PublicKey::from_pem(&o.text("pubkey.pub")).unwrap())
        .with_certificate(cert.clone());
    let body = br#"{"prepay_id":"wx26112221580621e9b071c00d9e093b0000"}"#;
    let (ts, nonce) = ("1554209980", "c5ac7061fccab6bf3e254dcf98995b8c");
    let message = [ts.as_bytes(), b"\n", nonce.as_bytes(), b"\n", body, b"\n"].concat();
    let by_pubkey = o.sign("pubkey", &message);
    let by_platform = o.sign("platform", &message);
    fn signed<'a>(serial: &'a str, signature: &'a str) -> SignedMessage<'a> {
        SignedMessage {
            serial,
            timestamp: "1554209980",
            nonce: "c5ac7061fccab6bf3e254dcf98995b8c",
            signature,
            body: br#"{"prepay_id":"wx26112221580621e9b071c00d9e093b0000"}"#,
        }
    }
    let msg = signed;

    verifier.verify(&msg(key_id, &by_pubkey)).unwrap();
    verifier
        .verify(&msg(
            "5A1DB0C5A1DB0C5A1DB0C5A1DB0C5A1DB0C5A1DB",
            &by_platform,
        ))
        .unwrap();
    assert!(verifier.knows(key_id) && verifier.knows(cert.serial_no()));
    // The right signature under the other key's name does not verify.
    assert_eq!(
        verifier.verify(&msg(key_id, &by_platform)),
        Err(V3Error::BadSignature)
    );
    assert_eq!(
        verifier.verify(&msg(cert.serial_no(), &by_pubkey)),
        Err(V3Error::BadSignature)
    );
    assert_eq!(
        verifier.verify(&msg("PUB_KEY_ID_OTHER", &by_pubkey)),
        Err(V3Error::UnknownSerial("PUB_KEY_ID_OTHER".into()))
    );
    // Any change to what is signed breaks it.
    let tampered = SignedMessage {
        body: br#"{"prepay_id":"wx26112221580621e9b071c00d9e093b0001"}"#,
        ..msg(key_id, &by_pubkey)
    };
    assert_eq!(verifier.verify(&tampered), Err(V3Error::BadSignature));
    let later = SignedMessage {
        timestamp: "1554209981",
        ..msg(key_id, &by_pubkey)
    };
    assert_eq!(verifier.verify(&later), Err(V3Error::BadSignature));
    assert_eq!(
        verifier.verify(&msg(key_id, "not base64!")),
        Err(V3Error::BadSignature)
    );
    // WeChat's probes are refused whatever follows the prefix.
    let probe = format!("WECHATPAY/SIGNTEST/{by_pubkey}");
    assert_eq!(
        verifier.verify(&msg(key_id, &probe)),
        Err(V3Error::SignTest)
    );
    // Without a public key, its ID is just an unknown serial.
    let certs_only = Verifier::new().with_certificate(cert.clone());
    assert_eq!(
        certs_only.verify(&msg(key_id, &by_pubkey)),
        Err(V3Error::UnknownSerial(key_id.into()))
    );
}

/// Serial, validity and key as `openssl x509` reads them; a serial with its
/// top bit set (DER pads it with a zero byte) included.
#[test]
fn platform_certificates_parse_like_openssl() {
    let o = Ossl::new();
    o.rsa_key("platform");
    for serial in [
        "0x8F1DB0C5A1DB0C5A1DB0C5A1DB0C5A1DB0C5A1DB",
        "0x3775B6A45ACD588826FF3E7A8F2EEBE13A9D6E4C",
        "0x01",
    ] {
        o.certificate("platform", serial);
        let cert = PlatformCertificate::from_pem(&o.text("platform.crt")).unwrap();
        let printed =
            String::from_utf8(o.run(&["x509", "-in", "platform.crt", "-noout", "-serial"]))
                .unwrap();
        assert_eq!(printed.trim(), format!("serial={}", cert.serial_no()));
        assert_eq!(cert.serial_no(), serial.trim_start_matches("0x"));

        let dates = String::from_utf8(o.run(&[
            "x509",
            "-in",
            "platform.crt",
            "-noout",
            "-startdate",
            "-enddate",
        ]))
        .unwrap();
        let date = |prefix: &str| {
            let line = dates.lines().find_map(|l| l.strip_prefix(prefix)).unwrap();
            let naive = NaiveDateTime::parse_from_str(
                &line.split_whitespace().collect::<Vec<_>>().join(" "),
                "%b %d %H:%M:%S %Y GMT",
            )
            .unwrap();
            Utc.from_utc_datetime(&naive)
        };
        assert_eq!(cert.not_before(), date("notBefore="));
        assert_eq!(cert.not_after(), date("notAfter="));
        assert_eq!(
            cert.not_after() - cert.not_before(),
            chrono::Duration::days(30)
        );
        assert!(cert.is_valid_at(Utc::now()));
        assert!(!cert.is_valid_at(Utc::now() + chrono::Duration::days(31)));
        assert_eq!(
            cert.public_key(),
            &PublicKey::from_pem(&o.text("platform.pub")).unwrap()
        );
    }
}

/// WeChat encrypts sensitive fields with RSA-OAEP, SHA-1 (openssl's OAEP default).
#[test]
fn oaep_interoperates_with_openssl_using_sha1() {
    let o = Ossl::new();
    o.rsa_key("platform");
    let public = PublicKey::from_pem(&o.text("platform.pub")).unwrap();
    let secret = "张三 13800138000".as_bytes();
    let ours = public.encrypt_oaep(secret).unwrap();
    assert_ne!(
        ours,
        public.encrypt_oaep(secret).unwrap(),
        "OAEP is randomized"
    );
    o.write("ct", &STANDARD.decode(&ours).unwrap());
    let plain = o.run(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        "platform.key",
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha1",
        "-pkeyopt",
        "rsa_mgf1_md:sha1",
        "-in",
        "ct",
    ]);
    assert_eq!(plain, secret);

    // openssl → ours; a SHA-256 OAEP ciphertext must not decrypt.
    let private = PrivateKey::from_pem(&o.text("platform.key")).unwrap();
    o.write("plain", b"6222021234567890");
    for (md, ok) in [("sha1", true), ("sha256", false)] {
        o.run(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "platform.pub",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &format!("rsa_oaep_md:{md}"),
            "-pkeyopt",
            &format!("rsa_mgf1_md:{md}"),
            "-in",
            "plain",
            "-out",
            "ct2",
        ]);
        let got = private.decrypt_oaep(&STANDARD.encode(o.read("ct2")));
        assert_eq!(got.is_ok(), ok, "{md}");
        if ok {
            assert_eq!(got.unwrap(), b"6222021234567890");
        }
    }
}

#[derive(serde::Deserialize)]
struct GcmVector {
    name: String,
    key: String,
    nonce: String,
    associated_data: String,
    plaintext: String,
    ciphertext: String,
}

fn gcm_vectors() -> Vec<GcmVector> {
    let raw = include_str!("data/wechatpay_v3/aes_gcm.json");
    serde_json::from_str(raw).unwrap()
}

#[test]
fn aes_gcm_matches_python_cryptography() {
    for v in gcm_vectors() {
        let key = ApiV3Key::new(&v.key).unwrap();
        let plain = key
            .decrypt_to_string(&v.nonce, &v.associated_data, &v.ciphertext)
            .unwrap();
        assert_eq!(plain, v.plaintext, "{}", v.name);
        assert_eq!(
            key.encrypt(&v.nonce, &v.associated_data, v.plaintext.as_bytes())
                .unwrap(),
            v.ciphertext,
            "{}",
            v.name
        );
    }
}

#[test]
fn aes_gcm_refuses_anything_tampered() {
    let v = &gcm_vectors()[0];
    let key = ApiV3Key::new(&v.key).unwrap();
    let raw = STANDARD.decode(&v.ciphertext).unwrap();
    let flip = |i: usize| {
        let mut c = raw.clone();
        c[i] ^= 0x01;
        STANDARD.encode(c)
    };
    let decrypt = |k: &ApiV3Key, nonce: &str, aad: &str, ct: &str| k.decrypt(nonce, aad, ct);
    // Ciphertext body, then the 16-byte tag at its end.
    assert_eq!(
        decrypt(&key, &v.nonce, &v.associated_data, &flip(0)),
        Err(V3Error::Decrypt)
    );
    assert_eq!(
        decrypt(&key, &v.nonce, &v.associated_data, &flip(raw.len() - 1)),
        Err(V3Error::Decrypt)
    );
    assert_eq!(
        decrypt(&key, &v.nonce, "refund", &v.ciphertext),
        Err(V3Error::Decrypt)
    );
    assert_eq!(
        decrypt(&key, "fdasflkja485", &v.associated_data, &v.ciphertext),
        Err(V3Error::Decrypt)
    );
    let other = ApiV3Key::new("5a1dbox0v3key0for0tests000000033").unwrap();
    assert_eq!(
        decrypt(&other, &v.nonce, &v.associated_data, &v.ciphertext),
        Err(V3Error::Decrypt)
    );
    let truncated = STANDARD.encode(&raw[..raw.len() - 1]);
    assert_eq!(
        decrypt(&key, &v.nonce, &v.associated_data, &truncated),
        Err(V3Error::Decrypt)
    );
    assert_eq!(
        decrypt(&key, "short", &v.associated_data, &v.ciphertext),
        Err(V3Error::NonceLength)
    );
    assert_eq!(
        decrypt(&key, &v.nonce, &v.associated_data, "%%%"),
        Err(V3Error::Base64("ciphertext"))
    );
    assert_eq!(
        ApiV3Key::new("too short").unwrap_err(),
        V3Error::ApiV3KeyLength
    );
    assert!(!format!("{key:?}").contains(&v.key));
}

#[test]
fn notifications_decode_and_decrypt_their_resource() {
    let v = &gcm_vectors()[0];
    let key = ApiV3Key::new(&v.key).unwrap();
    let body = serde_json::json!({
        "id": "EV-2018022511223320873",
        "create_time": "2015-05-20T13:29:35+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": v.ciphertext,
            "associated_data": v.associated_data,
            "nonce": v.nonce,
        }
    });
    let n: Notification = serde_json::from_value(body).unwrap();
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.resource.decrypt(&key).unwrap(), v.plaintext);
    let other = EncryptedResource {
        algorithm: "AEAD_SM4_GCM".into(),
        ..n.resource.clone()
    };
    assert_eq!(
        other.decrypt(&key),
        Err(V3Error::Algorithm("AEAD_SM4_GCM".into()))
    );
    let sealed =
        EncryptedResource::seal(&key, "123456789012", "refund", Some("refund"), b"{}").unwrap();
    assert_eq!(sealed.decrypt(&key).unwrap(), "{}");
}

/// What the sandbox uses: a generated key signs what openssl verifies.
#[test]
fn generated_keys_are_2048_bit_and_work_with_openssl() {
    let o = Ossl::new();
    let key = PrivateKey::generate().unwrap();
    o.write("gen.key", key.to_pem().as_bytes());
    o.write("gen.pub", key.public_key().to_pem().as_bytes());
    let text = String::from_utf8(o.run(&["pkey", "-in", "gen.key", "-noout", "-text"])).unwrap();
    assert!(text.contains("2048 bit"), "{text}");
    let sig = key.sign(b"hello\n");
    assert!(o.verifies("gen", b"hello\n", &sig));
}

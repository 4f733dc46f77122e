//! A rough cost figure for signature verification, per algorithm, next to a same-run baseline:
//! aws-lc-rs verifying with an unparsed key (what a library that parses the key per token pays).
//! Ignored by default; run with
//! `cargo test -p portcullis-crypto --release --test it -- --ignored --nocapture verify_cost`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use portcullis_crypto::jws::{Algorithm, Unverified};

use crate::common::{MAX_LEN, claims, key, key_set, unb64, validation};

fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 20 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[test]
#[ignore = "timing, run in release by hand"]
fn verify_cost() {
    const ITERATIONS: u32 = 2_000;
    println!(
        "{:<6} {:>14} {:>20} {:>22}",
        "alg", "verify µs", "parse+validate+verify", "aws-lc unparsed µs"
    );
    for alg in Algorithm::ALL {
        let signer = key(alg);
        let token = signer.sign_jwt(&claims(), Some("at+jwt")).unwrap();
        let verifying = signer.verifying_key().unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let (input, sig) = (input.as_bytes(), unb64(sig));
        let set = key_set(&[signer]);
        let v = validation();
        let jwk = signer.public_jwk();

        let bare = per_call(ITERATIONS, || {
            verifying
                .verify_signature(black_box(alg), black_box(input), &sig)
                .unwrap();
        });
        let full = per_call(ITERATIONS, || {
            let parsed = Unverified::parse(black_box(&token), MAX_LEN).unwrap();
            parsed.validate(&v).unwrap();
            parsed.verify_with(&set).unwrap();
        });
        let baseline = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let mut point = vec![4];
                point.extend(unb64(jwk.x.as_deref().unwrap()));
                point.extend(unb64(jwk.y.as_deref().unwrap()));
                let verifier = if alg == Algorithm::ES256 {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                per_call(ITERATIONS, || {
                    UnparsedPublicKey::new(verifier, &point)
                        .verify(black_box(input), &sig)
                        .unwrap();
                })
            }
            Algorithm::EdDSA => {
                let x = unb64(jwk.x.as_deref().unwrap());
                per_call(ITERATIONS, || {
                    UnparsedPublicKey::new(&signature::ED25519, &x)
                        .verify(black_box(input), &sig)
                        .unwrap();
                })
            }
            _ => {
                let components = RsaPublicKeyComponents {
                    n: unb64(jwk.n.as_deref().unwrap()),
                    e: unb64(jwk.e.as_deref().unwrap()),
                };
                let params = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                per_call(ITERATIONS, || {
                    components.verify(params, black_box(input), &sig).unwrap();
                })
            }
        };
        println!(
            "{:<6} {:>14.2} {:>20.2} {:>22.2}",
            alg.as_str(),
            micros(bare),
            micros(full),
            micros(baseline)
        );
    }
}

//! Envelope encryption: sealing, opening, rotation, wrapping, master key parsing.

use portcullis_crypto::CryptoError;
use portcullis_crypto::envelope::{
    DataKey, KeyRing, MasterKey, aad, sealed_key_id, unwrap_data_key, wrapped_master_key_id,
};

const TOKEN: &[u8] = b"ya29.a0AfH6SMB-refresh-token-of-a-user";

fn row_aad(connection_id: &str, kind: &str) -> Vec<u8> {
    aad(&[
        "connection",
        connection_id,
        "google-calendar",
        "user-1",
        "tenant-1",
        kind,
    ])
}

#[test]
fn seal_open_round_trip() {
    let ring = KeyRing::new(DataKey::generate(1));
    let aad = row_aad("c1", "access");
    let sealed = ring.seal(TOKEN, &aad).unwrap();
    assert_eq!(sealed.key_id, 1);
    assert_eq!(sealed_key_id(&sealed.bytes), Some(1));
    assert!(!sealed.bytes.windows(TOKEN.len()).any(|w| w == TOKEN));
    assert_eq!(ring.open(&sealed.bytes, &aad).unwrap().expose(), TOKEN);
    // Large values too.
    let big = vec![0x5a; 1 << 20];
    let sealed = ring.seal(&big, &aad).unwrap();
    assert_eq!(ring.open(&sealed.bytes, &aad).unwrap().expose(), &big[..]);
}

#[test]
fn wrong_aad_fails() {
    let ring = KeyRing::new(DataKey::generate(1));
    let sealed = ring.seal(TOKEN, &row_aad("c1", "access")).unwrap();
    assert_eq!(ring.open(&sealed.bytes, b""), Err(CryptoError::Decrypt));
    assert_eq!(
        ring.open(&sealed.bytes, b"something else"),
        Err(CryptoError::Decrypt)
    );
}

#[test]
fn ciphertext_moved_to_another_row_fails() {
    let ring = KeyRing::new(DataKey::generate(1));
    let alice_access = ring.seal(TOKEN, &row_aad("c1", "access")).unwrap();
    // Copied into another connection's row...
    assert_eq!(
        ring.open(&alice_access.bytes, &row_aad("c2", "access")),
        Err(CryptoError::Decrypt)
    );
    // ...or into the refresh-token column of the same row.
    assert_eq!(
        ring.open(&alice_access.bytes, &row_aad("c1", "refresh")),
        Err(CryptoError::Decrypt)
    );
    // ...or to another user of the same app.
    let other_user = aad(&[
        "connection",
        "c1",
        "google-calendar",
        "user-2",
        "tenant-1",
        "access",
    ]);
    assert_eq!(
        ring.open(&alice_access.bytes, &other_user),
        Err(CryptoError::Decrypt)
    );
    // In place it still opens.
    assert_eq!(
        ring.open(&alice_access.bytes, &row_aad("c1", "access"))
            .unwrap()
            .expose(),
        TOKEN
    );
}

#[test]
fn tampering_with_any_byte_fails() {
    // Keys 6 and 7 are both loaded, so flipping the low bit of the key id names a key that
    // exists: that must fail too.
    let mut ring = KeyRing::new(DataKey::generate(7));
    ring.insert(DataKey::generate(6));
    let aad = row_aad("c1", "access");
    let sealed = ring.seal(TOKEN, &aad).unwrap();
    for index in 0..sealed.bytes.len() {
        for bit in [0x01, 0x80] {
            let mut tampered = sealed.bytes.clone();
            tampered[index] ^= bit;
            assert!(
                ring.open(&tampered, &aad).is_err(),
                "byte {index} bit {bit:#x} was not detected"
            );
        }
    }
    for len in 0..sealed.bytes.len() {
        assert!(
            ring.open(&sealed.bytes[..len], &aad).is_err(),
            "truncated to {len}"
        );
    }
    let mut extended = sealed.bytes.clone();
    extended.push(0);
    assert!(ring.open(&extended, &aad).is_err());
}

#[test]
fn changing_the_key_id_to_another_loaded_key_fails() {
    let mut ring = KeyRing::new(DataKey::generate(1));
    ring.insert(DataKey::generate(2));
    let aad = row_aad("c1", "access");
    let sealed = ring.seal(TOKEN, &aad).unwrap();
    let mut relabelled = sealed.bytes.clone();
    relabelled[4] = 2;
    assert_eq!(sealed_key_id(&relabelled), Some(2));
    assert_eq!(ring.open(&relabelled, &aad), Err(CryptoError::Decrypt));
}

#[test]
fn unknown_key_id_is_reported_with_the_id() {
    let mut writer = KeyRing::new(DataKey::generate(1));
    let key_two = DataKey::generate(2);
    let master = MasterKey::generate("m").unwrap();
    let wrapped_two = master.wrap(&key_two).unwrap();
    writer.insert(key_two);
    writer.set_active(2).unwrap();
    let aad = row_aad("c1", "access");
    let sealed = writer.seal(TOKEN, &aad).unwrap();
    assert_eq!(sealed.key_id, 2);

    // A node that has not loaded key 2 yet...
    let mut reader = KeyRing::new(DataKey::generate(1));
    assert_eq!(
        reader.open(&sealed.bytes, &aad),
        Err(CryptoError::UnknownDataKey { id: 2 })
    );
    // ...loads it from storage and retries.
    reader.insert(master.unwrap(2, &wrapped_two).unwrap());
    assert_eq!(reader.open(&sealed.bytes, &aad).unwrap().expose(), TOKEN);
}

#[test]
fn rotation_keeps_old_ciphertexts_readable() {
    let mut ring = KeyRing::new(DataKey::generate(1));
    let aad = row_aad("c1", "access");
    let old = ring.seal(b"old", &aad).unwrap();
    ring.insert(DataKey::generate(2));
    assert_eq!(ring.active_id(), 1, "inserting does not activate");
    ring.set_active(2).unwrap();
    assert_eq!(ring.active_id(), 2);
    let new = ring.seal(b"new", &aad).unwrap();
    assert_eq!((old.key_id, new.key_id), (1, 2));
    assert_eq!(ring.open(&old.bytes, &aad).unwrap().expose(), b"old");
    assert_eq!(ring.open(&new.bytes, &aad).unwrap().expose(), b"new");
    assert!(ring.contains(1) && ring.contains(2) && !ring.contains(3));
    assert_eq!(ring.len(), 2);
    assert_eq!(
        ring.set_active(3),
        Err(CryptoError::UnknownDataKey { id: 3 })
    );
    assert_eq!(ring.active_id(), 2);
}

#[test]
fn wrap_unwrap_round_trip() {
    let master = MasterKey::generate("prod-1").unwrap();
    let data_key = DataKey::generate(42);
    let wrapped = master.wrap(&data_key).unwrap();
    assert_eq!(wrapped_master_key_id(&wrapped), Some("prod-1"));
    let sealed = KeyRing::new(data_key).seal(TOKEN, b"row").unwrap();

    let unwrapped = master.unwrap(42, &wrapped).unwrap();
    assert_eq!(unwrapped.id(), 42);
    // The unwrapped key is the same key: it opens what the original sealed.
    assert_eq!(
        KeyRing::new(unwrapped)
            .open(&sealed.bytes, b"row")
            .unwrap()
            .expose(),
        TOKEN
    );
    // Wrapping is randomized.
    assert_ne!(master.wrap(&DataKey::generate(1)).unwrap(), wrapped);
}

#[test]
fn unwrap_binds_the_data_key_id() {
    let master = MasterKey::generate("m").unwrap();
    let wrapped = master.wrap(&DataKey::generate(42)).unwrap();
    assert_eq!(
        master.unwrap(43, &wrapped).map(|_| ()),
        Err(CryptoError::Decrypt)
    );
}

#[test]
fn unwrap_with_another_master_key_fails() {
    let a = MasterKey::generate("a").unwrap();
    let b = MasterKey::generate("b").unwrap();
    let wrapped = a.wrap(&DataKey::generate(1)).unwrap();
    assert_eq!(
        b.unwrap(1, &wrapped).map(|_| ()),
        Err(CryptoError::UnknownMasterKey { id: "a".into() })
    );
    // Same id, different key material (an operator mistake): decryption fails.
    let impostor = MasterKey::parse_ring(&format!("a:{}", "A".repeat(43))).unwrap();
    assert_eq!(
        impostor[0].unwrap(1, &wrapped).map(|_| ()),
        Err(CryptoError::Decrypt)
    );
}

#[test]
fn tampered_wrapped_keys_fail() {
    let master = MasterKey::generate("m").unwrap();
    let wrapped = master.wrap(&DataKey::generate(1)).unwrap();
    for index in 0..wrapped.len() {
        let mut tampered = wrapped.clone();
        tampered[index] ^= 0x04;
        assert!(master.unwrap(1, &tampered).is_err(), "byte {index}");
    }
    assert_eq!(
        master.unwrap(1, &wrapped[..wrapped.len() - 1]).map(|_| ()),
        Err(CryptoError::MalformedCiphertext)
    );
}

#[test]
fn unwrap_with_a_ring_picks_the_right_master_key() {
    let ring = MasterKey::parse_ring(&format!("new:{}A\nold:{}A", "B".repeat(42), "C".repeat(42)))
        .unwrap();
    let from_old = ring[1].wrap(&DataKey::generate(5)).unwrap();
    let from_new = ring[0].wrap(&DataKey::generate(6)).unwrap();
    assert_eq!(unwrap_data_key(&ring, 5, &from_old).unwrap().id(), 5);
    assert_eq!(unwrap_data_key(&ring, 6, &from_new).unwrap().id(), 6);
    let stranger = MasterKey::generate("gone").unwrap();
    let orphan = stranger.wrap(&DataKey::generate(7)).unwrap();
    assert_eq!(
        unwrap_data_key(&ring, 7, &orphan).map(|_| ()),
        Err(CryptoError::UnknownMasterKey { id: "gone".into() })
    );
    assert_eq!(
        unwrap_data_key(&ring, 7, b"junk").map(|_| ()),
        Err(CryptoError::MalformedCiphertext)
    );
}

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32, standard
const KEY_B_URL: &str = "_-7t7Ovq6ejn5uXk4-Lh4N_e3dzb2tnY19bV1NPS0dA"; // url-safe, unpadded

#[test]
fn master_ring_parsing() {
    let text = format!(
        "# production keys\n\n  current:{KEY_A}  \nprevious:{KEY_B_URL} # rotated 2026-01\n,\nthird:{KEY_A},fourth:{KEY_B_URL}=\n"
    );
    let ring = MasterKey::parse_ring(&text).unwrap();
    let ids: Vec<&str> = ring.iter().map(MasterKey::id).collect();
    assert_eq!(
        ids,
        ["current", "previous", "third", "fourth"],
        "order is kept: first is active"
    );
    assert_eq!(
        ring[0].encode().expose(),
        format!("current:{KEY_A}"),
        "encode gives back the standard form"
    );
    // Same key material under different ids wraps compatibly only under its own id.
    let wrapped = ring[0].wrap(&DataKey::generate(1)).unwrap();
    assert!(ring[2].unwrap(1, &wrapped).is_err());
}

#[test]
fn master_ring_encode_round_trip() {
    let key = MasterKey::generate("dev").unwrap();
    let encoded = key.encode();
    let parsed = MasterKey::parse_ring(encoded.expose()).unwrap();
    assert_eq!(parsed.len(), 1);
    let wrapped = key.wrap(&DataKey::generate(9)).unwrap();
    assert_eq!(parsed[0].unwrap(9, &wrapped).unwrap().id(), 9);
}

#[test]
fn master_ring_duplicate_ids() {
    assert_eq!(
        MasterKey::parse_ring(&format!("a:{KEY_A}\nb:{KEY_B_URL}\na:{KEY_B_URL}")).map(|_| ()),
        Err(CryptoError::DuplicateMasterKeyId { id: "a".into() })
    );
}

#[test]
fn master_ring_bad_base64() {
    let err = MasterKey::parse_ring(&format!("a:{KEY_A}\nb:not*base64!")).unwrap_err();
    assert!(
        matches!(err, CryptoError::InvalidMasterKey { entry: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "master key entry 2 is invalid: the key is not valid base64"
    );
}

#[test]
fn master_ring_wrong_length() {
    for short_or_long in [
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", // 31 bytes
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", // 33 bytes
        "",
    ] {
        assert_eq!(
            MasterKey::parse_ring(&format!("k:{short_or_long}")).map(|_| ()),
            Err(CryptoError::InvalidMasterKey {
                entry: 1,
                reason: "the key must be 32 bytes (256 bits) long",
            }),
            "{short_or_long}"
        );
    }
}

#[test]
fn master_ring_other_errors_never_echo_the_key() {
    for (text, entry) in [
        (KEY_A.to_owned(), 1),          // no id
        (format!(":{KEY_A}"), 1),       // empty id
        (format!("bad id:{KEY_A}"), 1), // space in id
        (format!("a:{KEY_A}\nb/c:{KEY_A}"), 2),
    ] {
        let err = MasterKey::parse_ring(&text).unwrap_err();
        assert!(
            matches!(err, CryptoError::InvalidMasterKey { entry: e, .. } if e == entry),
            "{text}: {err:?}"
        );
        assert!(!err.to_string().contains(&KEY_A[..10]), "{err}");
    }
    for empty in ["", "\n\n", "# only a comment", " , ,"] {
        assert_eq!(
            MasterKey::parse_ring(empty).map(|_| ()),
            Err(CryptoError::NoMasterKey)
        );
    }
}

#[test]
fn debug_output_never_contains_key_bytes() {
    let ring = MasterKey::parse_ring(&format!("a:{KEY_A}")).unwrap();
    let printed = format!("{ring:?}");
    assert_eq!(printed, r#"[MasterKey { id: "a", .. }]"#);
    let mut key_ring = KeyRing::new(DataKey::generate(3));
    key_ring.insert(DataKey::generate(1));
    assert_eq!(
        format!("{key_ring:?}"),
        "KeyRing { active: 3, key_ids: [1, 3] }"
    );
}

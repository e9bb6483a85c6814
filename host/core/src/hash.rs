//! Deterministic hashes naming revisions and step lists.
//!
//! Argo Rollouts names a revision by an FNV-32a hash of its pod template (plus the collision
//! counter), printed in decimal and then re-encoded in Kubernetes' "safe" alphabet (no vowels, no
//! look-alike digits), so hashes never spell words. Sluice does the same over the canonical JSON
//! of the template as `serde_json` writes it. The values differ from Argo's (Go and Rust order
//! JSON fields differently), but they have the same shape, alphabet and stability: the same
//! template always yields the same hash.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sluice_api::rollout::CanaryStep;

/// The alphabet of Kubernetes' `rand.SafeEncodeString`: consonants and digits that cannot be
/// confused with each other or form words.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// An incremental FNV-32a hasher.
#[derive(Clone, Copy, Debug)]
struct Fnv32a(u32);

impl Fnv32a {
    fn new() -> Self {
        Self(FNV_OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u32::from(*byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

/// FNV-32a of `bytes`.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hasher = Fnv32a::new();
    hasher.write(bytes);
    hasher.0
}

/// Re-encodes every byte of `text` into the safe alphabet (`rand.SafeEncodeString`).
pub fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| char::from(SAFE_ALPHABET[usize::from(byte) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The pod-template hash of a revision: FNV-32a over the template's JSON, followed by the
/// collision counter as 8 little-endian bytes when one is set, printed in decimal and
/// safe-encoded.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hasher = Fnv32a::new();
    hasher.write(&canonical_json(template));
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&count.to_le_bytes());
        hasher.write(&bytes);
    }
    safe_encode(&hasher.0.to_string())
}

/// The hash of a canary step list (`status.currentStepHash`); a change restarts the steps.
pub fn step_hash(steps: &[CanaryStep]) -> String {
    safe_encode(&fnv32a(&canonical_json(&steps)).to_string())
}

fn canonical_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing plain data (strings, numbers, maps with string keys) cannot fail; an empty
    // document would still hash deterministically.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_maps_digits_into_the_safe_alphabet() {
        // '0' is byte 48; 48 % 27 = 21 -> '4'.
        assert_eq!(safe_encode("0"), "4");
        assert_eq!(safe_encode("1234"), "5678");
        assert!(
            safe_encode("4294967295")
                .bytes()
                .all(|byte| SAFE_ALPHABET.contains(&byte))
        );
    }

    #[test]
    fn pod_template_hash_is_stable_and_sensitive_to_template_and_collisions() {
        let blue = template("app:blue");
        assert_eq!(
            pod_template_hash(&blue, None),
            pod_template_hash(&blue, None)
        );
        assert_ne!(
            pod_template_hash(&blue, None),
            pod_template_hash(&template("app:green"), None)
        );
        assert_ne!(
            pod_template_hash(&blue, None),
            pod_template_hash(&blue, Some(1))
        );
        assert_ne!(
            pod_template_hash(&blue, Some(1)),
            pod_template_hash(&blue, Some(2))
        );
    }

    #[test]
    fn step_hash_changes_with_steps() {
        let one = vec![CanaryStep {
            set_weight: Some(10),
            ..CanaryStep::default()
        }];
        let two = vec![CanaryStep {
            set_weight: Some(20),
            ..CanaryStep::default()
        }];
        assert_eq!(step_hash(&one), step_hash(&one.clone()));
        assert_ne!(step_hash(&one), step_hash(&two));
    }
}

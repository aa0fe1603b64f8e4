//! One shard's slice of the virtual-address table: address → the connection holding it.
//! Only the owner shard (by [`VirtualAddress::shard_index`]) ever touches an address, so no
//! lock is needed.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

use crate::proto::address::VirtualAddress;
use crate::proxy::ids::ConnKey;

/// SHA-256 of the bearer token a connection registered with. The token itself is not kept.
pub type CredentialHash = [u8; 32];

/// Who holds an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The holder's slot on this shard.
    pub key: ConnKey,
    /// Boxed: most registrations carry no token, and the table entry stays small.
    pub credential: Option<Box<CredentialHash>>,
}

/// What a registration attempt may do with an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody holds it.
    Free,
    /// Held by a connection with the same credential: the newcomer takes it over.
    Takeover(ConnKey),
    /// Held by someone else: refused with 409.
    Conflict {
        /// The holder registered with a token (so the newcomer's differs and waiting will not
        /// help), rather than without one (then the holder may be the newcomer's own
        /// connection that has not timed out yet).
        credential: bool,
    },
}

/// The addresses this shard owns and who holds each.
#[derive(Debug, Default)]
pub struct AddressTable {
    map: HashMap<VirtualAddress, Registration>,
}

impl AddressTable {
    /// Who holds the canonical name `address` (borrowed: routing a request allocates nothing).
    pub fn lookup(&self, address: &str) -> Option<ConnKey> {
        self.map.get(address).map(|r| r.key)
    }

    /// Decide whether a newcomer with `credential` may have `address`. Only a matching,
    /// present credential allows a takeover: without tokens nobody can take anybody's name.
    pub fn claim(&self, address: &VirtualAddress, credential: Option<&CredentialHash>) -> Claim {
        match self.map.get(address) {
            None => Claim::Free,
            Some(held) => match (held.credential.as_deref(), credential) {
                (Some(a), Some(b)) if constant_time_eq(a, b) => Claim::Takeover(held.key),
                (held, _) => Claim::Conflict {
                    credential: held.is_some(),
                },
            },
        }
    }

    /// Record `registration` as the holder of `address`, replacing any holder after a
    /// [`Claim::Takeover`].
    pub fn insert(&mut self, address: VirtualAddress, registration: Registration) {
        self.map.insert(address, registration);
    }

    /// Free `address` if `key` still holds it (a replaced connection must not remove its
    /// successor's entry when it finally closes).
    pub fn remove_if_held_by(&mut self, address: &VirtualAddress, key: ConnKey) -> bool {
        if self.map.get(address).is_some_and(|r| r.key == key) {
            self.map.remove(address);
            true
        } else {
            false
        }
    }

    /// How many addresses are held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no address is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Compare two hashes without an early exit, so timing says nothing about where they differ.
pub(crate) fn constant_time_eq(a: &CredentialHash, b: &CredentialHash) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> VirtualAddress {
        VirtualAddress::parse(s.as_bytes()).expect("valid address")
    }

    const K1: ConnKey = ConnKey {
        index: 1,
        generation: 1,
    };
    const K2: ConnKey = ConnKey {
        index: 2,
        generation: 1,
    };

    #[test]
    fn takeover_needs_the_same_present_credential() {
        let mut table = AddressTable::default();
        let bob = addr("bob");
        assert_eq!(table.claim(&bob, None), Claim::Free);
        table.insert(
            bob.clone(),
            Registration {
                key: K1,
                credential: Some(Box::new([1; 32])),
            },
        );
        assert_eq!(table.claim(&bob, Some(&[1; 32])), Claim::Takeover(K1));
        let held_with_token = Claim::Conflict { credential: true };
        assert_eq!(table.claim(&bob, Some(&[2; 32])), held_with_token);
        assert_eq!(table.claim(&bob, None), held_with_token);

        let eve = addr("eve");
        table.insert(
            eve.clone(),
            Registration {
                key: K2,
                credential: None,
            },
        );
        assert_eq!(
            table.claim(&eve, Some(&[1; 32])),
            Claim::Conflict { credential: false }
        );
        assert_eq!(
            table.claim(&eve, None),
            Claim::Conflict { credential: false },
            "no token: no takeover"
        );
    }

    #[test]
    fn only_the_holder_frees_an_address() {
        let mut table = AddressTable::default();
        let bob = addr("bob");
        table.insert(
            bob.clone(),
            Registration {
                key: K2,
                credential: None,
            },
        );
        assert!(!table.remove_if_held_by(&bob, K1));
        assert_eq!(table.lookup(bob.as_str()), Some(K2));
        assert!(table.remove_if_held_by(&bob, K2));
        assert!(table.is_empty());
    }
}

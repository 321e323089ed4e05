//! Versions: what makes a deploy start with a clean L2 namespace, without a flush.
//!
//! Every L2 key of a cache starts with its namespace,
//! `[<process namespace>/]<prefix>:<cache name>:[v<version>:]<shape>:`, where
//! - the process namespace is set once at startup (`config::namespace("v42")`, a release id);
//! - the version is the cache's own (`#[cached(version = 2)]`, [`CacheBuilder::version`]);
//! - the shape is a hash of the key and value types' serde formats (field names and types,
//!   variants) where serde can describe them, else of their type names: a change of the value's
//!   type reads the old payloads as absent, never decodes them as the new type.
//!
//! [`CacheBuilder::version`]: crate::CacheBuilder::version

use std::sync::{PoisonError, RwLock};

use super::stamps::name_hash;

/// The process-wide namespace (empty: none).
static NAMESPACE: RwLock<String> = RwLock::new(String::new());

/// Sets the process-wide namespace of every L2 key (caches built from now on).
#[cfg_attr(not(feature = "config"), allow(dead_code))]
pub(crate) fn set_namespace(ns: &str) {
    *NAMESPACE.write().unwrap_or_else(PoisonError::into_inner) = ns.to_owned();
}

/// The process-wide namespace now.
pub(crate) fn namespace() -> String {
    NAMESPACE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// `prefix` within the process namespace.
pub(crate) fn namespaced(prefix: &str) -> String {
    let ns = namespace();
    if ns.is_empty() {
        prefix.to_owned()
    } else {
        format!("{ns}/{prefix}")
    }
}

/// The shape of `T`: its serde format where serde can trace it, else its type name.
#[cfg(feature = "serde")]
pub(crate) fn shape<T: serde::de::DeserializeOwned>() -> String {
    use serde_reflection::{Tracer, TracerConfig};
    let mut tracer = Tracer::new(TracerConfig::default());
    match tracer.trace_simple_type::<T>() {
        Ok((format, _)) => format!("{format:?}{:?}", tracer.registry_unchecked()),
        Err(_) => std::any::type_name::<T>().to_owned(),
    }
}

/// The namespace segment of a version and a shape: `v<version>:<hash>` or `<hash>`.
pub(crate) fn segment(version: Option<u32>, shape: &str) -> String {
    let h = name_hash(&[shape.as_bytes()]) & 0xFFFF_FFFF;
    match version {
        Some(v) => format!("v{v}:{h:08x}"),
        None => format!("{h:08x}"),
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    mod v1 {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct User {
            pub id: u64,
            pub name: String,
        }
    }
    mod v2 {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct User {
            pub id: u64,
            pub name: String,
            pub email: String,
        }
    }

    #[test]
    fn a_changed_type_has_another_shape() {
        assert_ne!(shape::<v1::User>(), shape::<v2::User>());
        assert_eq!(shape::<v1::User>(), shape::<v1::User>());
        assert!(shape::<v1::User>().contains("User"));
    }

    #[test]
    fn the_version_shows_in_the_segment() {
        assert!(segment(Some(2), "x").starts_with("v2:"));
        assert_ne!(segment(Some(1), "x"), segment(Some(2), "x"));
        assert_ne!(segment(None, "x"), segment(None, "y"));
    }
}
